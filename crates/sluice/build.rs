fn main() {
    println!("cargo:rerun-if-changed=src/numeric.c");
    cc::Build::new()
        .file("src/numeric.c")
        .compile("sluice_numeric");
}
