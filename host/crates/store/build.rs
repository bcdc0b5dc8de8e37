//! Build script of `gatehouse-store`: makes Cargo rebuild the crate when a migration file is added
//! or changed (`sqlx::migrate!` embeds them at compile time). It generates no code.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
