//! Gives libhakmem.so its SONAME, so programs linked with `-lhakmem` record `libhakmem.so` as
//! their dependency (and not the path it was linked from).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhakmem.so");
}
