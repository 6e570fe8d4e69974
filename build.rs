//! Build facts cargo cannot see by itself:
//! - `embed_migrations!` reads `migrations/` at compile time: a new folder there rebuilds;
//! - the black-box tests build their PostgreSQL variants as ignored (saying why) unless
//!   `EBOND_TEST_DATABASE_URL` is set (`cfg(ebond_pg_tests)`).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=EBOND_TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(ebond_pg_tests)");
    if std::env::var_os("EBOND_TEST_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=ebond_pg_tests");
    }
}
