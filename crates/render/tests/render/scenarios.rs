//! The five reference scenarios rendered with demo keys: golden snapshots of
//! every file, the manifest, and byte-identical output on a second run.
//! `generated(name)` is shared with the real-tool tests of the other modules.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vpnsim_keys::KeySource;
use vpnsim_render::hosts::{Options, generate};
use vpnsim_render::tree::FileSet;

pub const SCENARIOS: [&str; 5] = [
    "eduvpn-locations",
    "eduvpn-multinode",
    "wireguard-star",
    "aws-three-regions",
    "dual-path-bond",
];

pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(format!("{name}.toml"))
}

/// The tree `sim gen --demo-keys` writes for the shipped scenario `name`.
pub fn generated(name: &str) -> FileSet {
    generated_with(name, &Options::default())
}

pub fn generated_with(name: &str, options: &Options) -> FileSet {
    let path = scenario_path(name);
    let scenario = vpnsim_topology::load_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let planned = vpnsim_plan::plan(&scenario);
    let keys = KeySource::demo(scenario.topology.seed);
    match generate(&scenario, &planned.plan, &keys, options) {
        Ok(files) => files,
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            panic!("{name}: generation failed:\n{}", list.join("\n"))
        }
    }
}

#[test]
fn every_file_of_the_five_scenarios_matches_its_snapshot() {
    for name in SCENARIOS {
        let files = generated(name);
        for file in files.files() {
            let snapshot = format!("{name}__{}__{}", file.host, file.path.replace('/', "_"));
            insta::with_settings!({ snapshot_path => "snapshots/scenarios", prepend_module_to_snapshot => false, omit_expression => true, description => format!("{name}: {}/{} (mode {:o}, {})", file.host, file.path, file.mode, file.producer) }, {
                insta::assert_snapshot!(snapshot, file.contents);
            });
        }
        insta::with_settings!({ snapshot_path => "snapshots/scenarios", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(format!("{name}__manifest"), files.manifest_json(name));
        });
    }
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    for name in SCENARIOS {
        let a = generated(name);
        let b = generated(name);
        assert_eq!(a.manifest_json(name), b.manifest_json(name), "{name}");
        for (x, y) in a.files().zip(b.files()) {
            assert!(
                x.contents == y.contents,
                "{name}: {}/{} differs between runs",
                x.host,
                x.path
            );
        }
    }
}

#[test]
fn every_file_holding_a_demo_key_says_so() {
    for name in SCENARIOS {
        for file in generated(name).files() {
            if file.mode == vpnsim_render::tree::MODE_SECRET {
                assert!(
                    file.contents.contains(vpnsim_keys::DEMO_MARKER),
                    "{name}: {}/{} is secret (0600) but has no demo-key marker",
                    file.host,
                    file.path
                );
            }
        }
    }
}
