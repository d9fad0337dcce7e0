//! Generates the bindings (`uniffi-bindgen generate --library …`).
fn main() {
    uniffi::uniffi_bindgen_main()
}
