//! Links the `devmgr` binary with the function order of `scripts/text-order` when
//! `scripts/build-dist` asks for it (`DEVMGR_TEXT_ORDER`: the path of
//! `crates/devmgr/dist/text-order.txt`): lld lays the functions a boot runs first, so that the
//! pages a boot maps hold the code it runs (`crates/devmgr/BENCH.md`, "Text layout"). Any
//! other build is linked as rustc does by default. Only the binary is affected, and only it is
//! linked again when the file changes.

fn main() {
    println!("cargo::rerun-if-env-changed=DEVMGR_TEXT_ORDER");
    if let Some(order) = std::env::var_os("DEVMGR_TEXT_ORDER") {
        let order = order.to_string_lossy();
        println!("cargo::rerun-if-changed={order}");
        println!("cargo::rustc-link-arg-bin=devmgr=-Wl,--symbol-ordering-file={order}");
        // Names the binary does not have (a function inlined away since) are skipped;
        // `scripts/text-order --check` counts them.
        println!("cargo::rustc-link-arg-bin=devmgr=-Wl,--no-warn-symbol-ordering");
    }
}
