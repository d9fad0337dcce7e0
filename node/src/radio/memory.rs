//! In-memory air (see `memory` in the radio module docs).
