//! The product crates stay pure Rust: no `-sys` crate (no C library such as librdkafka, zstd or
//! lz4) and no peer Kafka client anywhere in their normal dependency trees, so the CLI builds as
//! a static musl binary. Peer clients may appear only in `benches/` and `interop/`.

use std::process::Command;

const PRODUCT_CRATES: &[&str] = &[
    "kafka-persistence",
    "kafka-persistence-wire",
    "kafka-persistence-journal",
    "kafka-persistence-snapshot",
    "kafka-persistence-testserver",
];

fn normal_dependencies(package: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn product_crates_have_no_c_dependency_and_no_peer_client() {
    for package in PRODUCT_CRATES {
        let deps = normal_dependencies(package);
        assert!(
            deps.len() > 3,
            "{package}: cargo tree listed too little: {deps:?}"
        );
        let offending: Vec<&String> = deps
            .iter()
            .filter(|d| {
                d.ends_with("-sys")
                    || d.contains("rdkafka")
                    || d.as_str() == "rskafka"
                    || d.as_str() == "cc"
            })
            .collect();
        assert!(offending.is_empty(), "{package} depends on {offending:?}");
    }
}
