//! What a call across the plugin ABI costs: the example plugin's `begin_login` and
//! `manifest`, called through the loaded library (abi_stable trait object, FFI-safe
//! types, panic guard) and called directly on the same Rust code linked as an rlib.
//! Both use the test kit's fake host, so no I/O is measured.

use std::{hint::black_box, path::PathBuf, process::Command};

use abi_stable::{std_types::RStr, type_level::downcasting::TD_Opaque};
use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::plugins::loader::load_one;
use gatehouse_example::ExampleIdp;
use gatehouse_plugin_api::{
    BeginRequest, HostFfi_TO, IdentityProvider, InstanceConfig, Plugin, testkit::FakeHost,
};

/// The release build of the example library, built first if needed.
fn example_library() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--quiet", "--release", "-p", "gatehouse-example"])
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the example plugin failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("release").join("libgatehouse_example.so")
}

fn request() -> BeginRequest {
    BeginRequest {
        callback_url: "https://sso.example.test/sso/example/callback".into(),
        state_token: "0123456789abcdef0123456789abcdef0123456789a".into(),
        login_hint: None.into(),
    }
}

fn plugin_call(c: &mut Criterion) {
    let loaded = load_one(&example_library()).expect("the example plugin loads");
    let across_abi = (loaded.module.new_idp())(RStr::from("example"), RStr::from("{}"))
        .into_result()
        .expect("instance");
    let direct =
        ExampleIdp::new(&InstanceConfig::new("example", serde_json::json!({}))).expect("instance");
    let fake = FakeHost::new();

    let mut group = c.benchmark_group("begin_login");
    group.bench_function("across the ABI", |b| {
        b.iter(|| {
            let host = HostFfi_TO::from_ptr(&fake, TD_Opaque);
            black_box(
                across_abi
                    .begin_login(host, black_box(request()))
                    .into_result()
                    .expect("begins"),
            )
        })
    });
    group.bench_function("direct call", |b| {
        b.iter(|| {
            black_box(fake.call(|host| {
                direct
                    .begin_login(host, &black_box(request()))
                    .expect("begins")
            }))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("manifest");
    let manifest = loaded.module.manifest();
    group.bench_function("across the ABI", |b| {
        b.iter(|| black_box(manifest().into_result().expect("manifest")))
    });
    group.bench_function("direct call", |b| {
        b.iter(|| black_box(ExampleIdp::manifest()))
    });
    group.finish();
}

criterion_group!(benches, plugin_call);
criterion_main!(benches);
