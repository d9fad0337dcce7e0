//! Bluetooth LE backend (btleplug scanning, BlueZ advertising through bluer).
