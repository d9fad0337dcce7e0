//! UDP multicast air on loopback (see the radio module docs).
