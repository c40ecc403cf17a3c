//! The product crates stay pure Rust: no `-sys` crate (no C library such as librdkafka, zstd or
//! lz4), no C-backed crypto (ring, aws-lc, openssl: TLS uses rustls with Graviola), no `cc` or
//! `cmake` build step and no peer Kafka client anywhere in their normal and build dependency
//! trees, so the CLI builds as a static musl binary without a C compiler. Peer clients may
//! appear only in `benches/` and `interop/`.

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
            "normal,build",
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
    // The TLS stack is there (so the check below looks at the right tree).
    assert!(normal_dependencies("kafka-persistence-wire")
        .iter()
        .any(|d| d == "rustls-graviola"));
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
                    || d.as_str() == "cmake"
                    || d.as_str() == "ring"
                    || d.starts_with("aws-lc")
                    || d.as_str() == "openssl"
            })
            .collect();
        assert!(offending.is_empty(), "{package} depends on {offending:?}");
    }
}
