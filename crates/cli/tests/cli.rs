//! The `sim` binary as users run it: exit codes, output, and the promise
//! that bad input gets a located error and never a panic.
//!
//! One integration-test binary for the crate (each extra binary costs a link).
//! Sections: (a) golden output of the bundled scenarios, (b) a catalogue of
//! bad input, (c) schema, completions, man and usage, (d) warnings only,
//! (e) gen, diff and keys, (f) `sim run --configs` on edited trees.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Repository root: snapshots run from here with relative paths, so file
/// names in the output do not depend on where the checkout lives.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What one run of `sim` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Every run must end by exiting, never by a panic.
    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked at"),
            "sim panicked:\n{}",
            self.stderr
        );
        assert!(
            !self.stdout.contains("panicked at"),
            "sim panicked:\n{}",
            self.stdout
        );
    }

    /// stdout and stderr together, for "is it said anywhere" assertions.
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Exit code, then stdout: what a snapshot records.
    fn snapshot(&self) -> String {
        format!("exit: {}\n{}", self.code, self.stdout)
    }
}

/// Runs `sim` in `dir` with plain output and default logging.
fn sim_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run sim: {e}"));
    let run = Run {
        // A signal is reported as -1 and fails every exit-code assertion.
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    run.assert_no_panic();
    run
}

fn sim(args: &[&str]) -> Run {
    sim_in(&workspace_root(), args)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Codes of the findings in `sim check --format json` output.
fn codes(findings: &serde_json::Value) -> Vec<String> {
    findings["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn has_error_finding(findings: &serde_json::Value) -> bool {
    findings["findings"]
        .as_array()
        .is_some_and(|a| a.iter().any(|f| f["severity"] == "error"))
}

/// A scratch directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("vpnsim-cli-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.0.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self
    }

    fn sim(&self, args: &[&str]) -> Run {
        sim_in(&self.0, args)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Checks one file in a fresh scratch directory.
fn check_text(name: &str, contents: impl AsRef<[u8]>) -> Run {
    let dir = TempDir::new("case");
    dir.write(name, contents);
    dir.sim(&["check", name])
}

// ---------------------------------------------------------------------------
// (a) Golden output of the bundled scenarios.
// ---------------------------------------------------------------------------

/// The five scenarios of `scenarios/`.
const SCENARIOS: [&str; 5] = [
    "eduvpn-locations",
    "eduvpn-multinode",
    "wireguard-star",
    "aws-three-regions",
    "dual-path-bond",
];

/// Snapshots `check`, `check --format json` and `plan` of one scenario and
/// checks that the exit codes agree with the findings.
fn golden(name: &str) {
    let file = format!("scenarios/{name}.toml");
    assert!(workspace_root().join(&file).is_file(), "{file} is missing");

    let check = sim(&["check", &file]);
    let check_json = sim(&["check", "--format", "json", &file]);
    let plan = sim(&["plan", &file]);

    let findings = json(&check_json.stdout);
    assert_ne!(check.code, 2, "{file} must load:\n{}", check.all());
    let expected = if has_error_finding(&findings) { 1 } else { 0 };
    assert_eq!(
        check.code, expected,
        "check exit code vs findings:\n{}",
        check.stdout
    );
    assert_eq!(check_json.code, expected);
    assert!(
        check.stdout.ends_with(" in 1 file\n"),
        "summary line:\n{}",
        check.stdout
    );
    assert!(
        plan.code == 0 || plan.code == 1,
        "plan exit {}:\n{}",
        plan.code,
        plan.all()
    );
    for section in [
        "ULA prefix:",
        "Pools:",
        "Addresses:",
        "Client ranges:",
        "Site reachability",
    ] {
        assert!(
            plan.stdout.contains(section),
            "plan lacks {section}:\n{}",
            plan.stdout
        );
    }

    insta::assert_snapshot!(format!("check__{name}"), check.snapshot());
    insta::assert_snapshot!(format!("check_json__{name}"), check_json.snapshot());
    insta::assert_snapshot!(format!("plan__{name}"), plan.snapshot());
}

#[test]
fn golden_eduvpn_locations() {
    golden("eduvpn-locations");
}

#[test]
fn golden_eduvpn_multinode() {
    golden("eduvpn-multinode");
}

#[test]
fn golden_wireguard_star() {
    golden("wireguard-star");
}

#[test]
fn golden_aws_three_regions() {
    golden("aws-three-regions");
}

#[test]
fn golden_dual_path_bond() {
    golden("dual-path-bond");
}

#[test]
fn every_bundled_scenario_is_covered() {
    let mut found: Vec<String> = std::fs::read_dir(workspace_root().join("scenarios"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".toml"))
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let mut expected: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        found, expected,
        "scenarios/ and the golden tests must list the same files"
    );
}

#[test]
fn check_of_several_files_reports_each() {
    let files: Vec<String> = SCENARIOS
        .iter()
        .map(|s| format!("scenarios/{s}.toml"))
        .collect();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let run = sim(&args);
    assert!(run.stdout.ends_with(" in 5 files\n"), "{}", run.stdout);
}

#[test]
fn plan_json_names_hosts_and_has_every_section() {
    let run = sim(&[
        "plan",
        "--format",
        "json",
        "scenarios/aws-three-regions.toml",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let plan = json(&run.stdout);
    for key in [
        "scenario",
        "ula",
        "pools",
        "addresses",
        "client_ranges",
        "matrix",
    ] {
        assert!(plan.get(key).is_some(), "plan JSON lacks {key}");
    }
    assert_eq!(plan["scenario"], "aws-three-regions");
    let hosts: Vec<&str> = plan["addresses"].as_array().map_or_else(Vec::new, |a| {
        a.iter().filter_map(|x| x["host"].as_str()).collect()
    });
    assert!(hosts.contains(&"vpn-virginia"), "{hosts:?}");
    assert_eq!(plan["matrix"]["sites"].as_array().map(Vec::len), Some(3));
}

#[test]
fn run_simulates_and_judges_every_expectation() {
    let file = "scenarios/aws-three-regions.toml";
    let run = sim(&["run", "--seed", "4242", file]);
    run.assert_no_panic();
    assert_eq!(
        run.code,
        0,
        "every expectation of aws-three-regions holds:\n{}",
        run.all()
    );
    let first = run.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "sim run scenarios/aws-three-regions.toml: scenario `aws-three-regions`, seed 4242 (from --seed)"
    );
    assert!(run.stdout.contains("Static checks:"));
    assert!(run.stdout.contains("Address plan of scenario"));
    assert!(
        run.stdout
            .contains("12 expectations passed, 0 failed, 0 not measured"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("[hub-crash] vpn-virginia crashes"),
        "{}",
        run.stdout
    );

    let from_file = sim(&["run", file]);
    assert!(
        from_file
            .stdout
            .lines()
            .next()
            .unwrap_or_default()
            .ends_with("(from the file)")
    );

    let run_json = sim(&["run", "--format", "json", "--seed", "7", file]);
    let report = json(&run_json.stdout);
    assert_eq!(report["seed"], 7);
    assert_eq!(report["simulation"]["status"], "ran");
    assert_eq!(report["simulation"]["expectations_evaluated"], 12);
    assert_eq!(
        report["result"]["expectations"].as_array().map(Vec::len),
        Some(12)
    );
    let recover = &report["result"]["expectations"][10];
    assert_eq!(recover["kind"], "recover");
    assert!(recover["recovery_ms"].is_string(), "{recover:#}");
    assert!(report["plan"]["addresses"].is_array());

    let junit = sim(&["run", "--format", "junit", file]);
    assert!(junit.stdout.starts_with("<?xml"), "{}", junit.stdout);
    assert_eq!(junit.stdout.matches("<testcase ").count(), 12);
}

#[test]
fn run_exits_1_with_evidence_when_an_expectation_fails() {
    // The hub never comes back (its restart event becomes a second crash):
    // the recover expectations cannot hold.
    let broken = std::fs::read_to_string(workspace_root().join("scenarios/aws-three-regions.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("run-fail");
    let restart = broken
        .find("name = \"hub-restart\"")
        .unwrap_or_else(|| panic!("no hub-restart event"));
    let never = format!(
        "{}{}",
        &broken[..restart],
        broken[restart..].replacen("action = \"restart\"", "action = \"crash\"", 1)
    );
    dir.write("broken.toml", never);
    let run = dir.sim(&["run", "broken.toml"]);
    run.assert_no_panic();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("FAIL"), "{}", run.stdout);
    assert!(
        run.stdout.contains("reach did not come back"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_determinism_compares_every_output_and_changes_none() {
    let dir = TempDir::new("determinism");
    let star = star_scenario();
    let checked = dir.sim(&[
        "run",
        &star,
        "--check-determinism",
        "--format",
        "json",
        "--trace",
        "a.trace",
        "--pcap",
        "a-pcap",
    ]);
    assert_eq!(checked.code, 0, "{}", checked.all());
    assert!(
        checked
            .stderr
            .contains("sim run: deterministic: two passes with seed 2 gave byte-identical output")
            && checked
                .stderr
                .contains("host files, event trace, 6 pcap files, text, JSON and JUnit reports"),
        "{}",
        checked.stderr
    );
    // What was compared is what a run without the check prints and writes.
    let plain = dir.sim(&[
        "run", &star, "--format", "json", "--trace", "b.trace", "--pcap", "b-pcap",
    ]);
    assert_eq!(plain.code, 0, "{}", plain.all());
    assert_eq!(checked.stdout, plain.stdout);
    let read = |name: &str| std::fs::read(dir.0.join(name)).unwrap_or_default();
    assert!(!read("a.trace").is_empty());
    assert_eq!(read("a.trace"), read("b.trace"));
    let (a, b) = (tree(&dir.0.join("a-pcap")), tree(&dir.0.join("b-pcap")));
    assert_eq!(
        a.len(),
        6,
        "{:?}",
        a.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(a, b);

    let junit = dir.sim(&["run", &star, "--check-determinism", "--format", "junit"]);
    assert_eq!(junit.code, 0, "{}", junit.all());
    assert!(junit.stdout.starts_with("<?xml"), "{}", junit.stdout);
    let quiet = dir.sim(&["-q", "run", &star, "--check-determinism"]);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""));
}

#[test]
fn exit_code_3_is_documented_as_an_internal_error() {
    let help = sim(&["--help"]);
    assert!(
        help.stdout
            .contains("3 `sim run --check-determinism` found two passes that differ"),
        "{}",
        help.stdout
    );
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap_or_default();
    assert!(
        readme.contains("| 3 | internal error: `sim run --check-determinism`"),
        "README's exit code table"
    );
}

/// `expect.recover[i]`'s recovery time in a `sim run --format json` report.
fn recovery_ms(report: &serde_json::Value, field: &str) -> String {
    report["result"]["expectations"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["field"] == field))
        .and_then(|e| e["recovery_ms"].as_str())
        .unwrap_or_else(|| panic!("no recovery_ms for {field}"))
        .to_string()
}

#[test]
fn seed_sweep_runs_the_seed_and_the_following_ones_and_spreads_every_figure() {
    let file = "scenarios/dual-path-bond.toml";
    let sweep = sim(&[
        "run", file, "--seed", "5", "--seeds", "2", "--format", "json",
    ]);
    assert_eq!(sweep.code, 0, "{}", sweep.all());
    let report = json(&sweep.stdout);
    let s = &report["sweep"];
    assert_eq!(
        (&s["runs"], &s["first_seed"], &s["last_seed"]),
        (&2.into(), &5.into(), &6.into())
    );
    // The two runs are exactly `--seed 5` and `--seed 6`.
    let five = json(&sim(&["run", file, "--seed", "5", "--format", "json"]).stdout);
    let six = json(&sim(&["run", file, "--seed", "6", "--format", "json"]).stdout);
    assert_eq!(report["result"], five["result"], "the main run is seed 5");
    for (i, e) in s["expectations"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        assert_eq!((&e["passed"], &e["runs"]), (&2.into(), &2.into()), "{e:#}");
        if e["kind"] == "recover" {
            let field = e["field"].as_str().unwrap_or_default();
            let mut both = [recovery_ms(&five, field), recovery_ms(&six, field)];
            both.sort_by(|a, b| {
                a.parse::<f64>()
                    .unwrap_or(0.0)
                    .total_cmp(&b.parse().unwrap_or(0.0))
            });
            let d = &e["recovery_ms"];
            assert_eq!(d["count"], 2, "{i}");
            assert_eq!(
                (d["min"].as_str(), d["max"].as_str()),
                (Some(&*both[0]), Some(&*both[1]))
            );
        }
    }
    for p in s["probes"].as_array().into_iter().flatten() {
        assert_eq!(p["rtt_avg_ms"]["count"], 2, "{p:#}");
        assert_eq!(p["loss_pct"]["count"], 2, "{p:#}");
    }
    let goodput = &s["transfers"][0]["goodput_bps"];
    assert_eq!(goodput["count"], 2, "{goodput:#}");
    let of = |r: &serde_json::Value| r["result"]["transfers"][0]["goodput_bps"].to_string();
    let mut both = [of(&five), of(&six)];
    both.sort_by_key(|x| x.parse::<u64>().unwrap_or(0));
    assert_eq!(
        (goodput["min"].as_str(), goodput["max"].as_str()),
        (Some(&*both[0]), Some(&*both[1]))
    );

    let text = sim(&[
        "run",
        "--check-determinism",
        "--seeds",
        "3",
        "scenarios/wireguard-star.toml",
    ]);
    assert_eq!(text.code, 0, "{}", text.all());
    for part in [
        "Seed sweep: 3 runs, seeds 2..=4",
        "expect.recover[0]",
        "Probes over the sweep",
        "rtt avg ms",
    ] {
        assert!(text.stdout.contains(part), "{part}:\n{}", text.stdout);
    }
    let help = sim(&["run", "--help"]);
    assert!(
        help.stdout
            .contains("Run N seeds in all: the run's seed and the N-1 following ones"),
        "{}",
        help.stdout
    );
}

#[test]
fn seed_varies_the_simulation_but_not_the_host_files() {
    // `sim run --seed 99` runs the very files `sim gen --demo-keys` writes
    // (demo keys from the file's seed, 2), not files keyed by 99: with the
    // tree of `sim gen`, the result and the trace are the same bytes.
    let dir = TempDir::new("seed-keys");
    let star = star_scenario();
    assert_eq!(
        dir.sim(&["gen", &star, "-o", "tree", "--demo-keys"]).code,
        0
    );
    let rendered = dir.sim(&[
        "run", &star, "--seed", "99", "--format", "json", "--trace", "a",
    ]);
    let from_tree = dir.sim(&[
        "run",
        &star,
        "--seed",
        "99",
        "--format",
        "json",
        "--trace",
        "b",
        "--configs",
        "tree",
    ]);
    assert_eq!(
        (rendered.code, from_tree.code),
        (0, 0),
        "{}{}",
        rendered.all(),
        from_tree.all()
    );
    let (r, t) = (json(&rendered.stdout), json(&from_tree.stdout));
    assert_eq!(r["seed"], 99);
    assert_eq!(r["host_files"]["key_seed"], 2);
    assert_eq!(t["host_files"]["source"], "configs");
    assert!(
        r["result"] == t["result"],
        "same files, same seed, same run"
    );
    let read = |name: &str| std::fs::read(dir.0.join(name)).unwrap_or_default();
    assert_eq!(read("a"), read("b"));
    let text = dir.sim(&["run", &star, "--seed", "99"]);
    assert!(
        text.stdout
            .contains("Host files: rendered in memory with demo keys from seed 2"),
        "{}",
        text.stdout
    );
}

#[test]
fn run_json_has_every_measured_figure() {
    let multinode =
        json(&sim(&["run", "scenarios/eduvpn-multinode.toml", "--format", "json"]).stdout);
    let result = &multinode["result"];
    assert!(result["steady_state"]["start_s"].is_string());
    let probes = result["probes"].as_array().cloned().unwrap_or_default();
    let daemon = probes
        .iter()
        .find(|p| p["from"] == "controller" && p["to"] == "node-a")
        .unwrap_or_else(|| panic!("{probes:#?}"));
    assert_eq!(
        (&daemon["kind"], &daemon["port"]),
        (&"tcp".into(), &41194.into())
    );
    for key in [
        "target",
        "sent",
        "answered",
        "loss_pct",
        "steady_sent",
        "steady_answered",
        "rtt_min_ms",
        "rtt_avg_ms",
        "rtt_max_ms",
    ] {
        assert!(daemon.get(key).is_some(), "probe lacks {key}: {daemon:#}");
    }
    let web = probes
        .iter()
        .find(|p| p["to"] == "web")
        .unwrap_or_else(|| panic!("{probes:#?}"));
    assert_eq!(
        (&web["kind"], &web["payload_bytes"]),
        (&"icmp".into(), &56.into())
    );
    let isolated = &result["expectations"][6];
    assert_eq!(isolated["field"], "expect.isolated[0]");
    assert!(isolated["window"]["end_s"].is_string(), "{isolated:#}");
    assert!(
        isolated["first_error"]
            .as_str()
            .is_some_and(|e| e.contains("AdminProhibited"))
    );
    let probe = isolated["probe"].as_u64().unwrap_or(u64::MAX) as usize;
    assert_eq!(probes[probe]["to"], "node-a");

    let bond = json(&sim(&["run", "scenarios/dual-path-bond.toml", "--format", "json"]).stdout);
    let transfer = &bond["result"]["transfers"][0];
    for key in [
        "goodput_bps",
        "bytes",
        "mss",
        "receive_window",
        "segments",
        "retransmits",
        "rtt_min_ms",
        "established_s",
        "window",
    ] {
        assert!(
            transfer.get(key).is_some(),
            "transfer lacks {key}: {transfer:#}"
        );
    }
    assert!(
        transfer["goodput_bps"]
            .as_u64()
            .is_some_and(|g| g > 10_000_000)
    );
    let throughput = bond["result"]["expectations"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == "throughput").cloned())
        .unwrap_or_default();
    assert_eq!(throughput["transfer"], 0);
}

#[test]
fn text_report_has_a_measured_reachability_matrix() {
    let run = sim(&["run", "scenarios/eduvpn-multinode.toml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let matrix: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| {
            !l.starts_with(
                "Measured reachability in the steady state (10.000000 s to 120.000000 s)",
            )
        })
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        matrix.len(),
        10,
        "title, header, 8 probing hosts:\n{}",
        run.stdout
    );
    let header: Vec<&str> = matrix[1].split_whitespace().collect();
    assert_eq!(
        header,
        ["FROM", "\\", "TO", "controller", "node-a", "node-b", "web"]
    );
    let row = |host: &str| {
        matrix
            .iter()
            .find(|l| l.split_whitespace().next() == Some(host))
            .copied()
            .unwrap_or_default()
    };
    // Blocked by node-a's firewall; answered by web; not probed.
    assert!(
        row("client-1").contains("tcp/41194 0/110"),
        "{}",
        matrix.join("\n")
    );
    assert!(
        row("client-1").ends_with("110/110"),
        "{}",
        matrix.join("\n")
    );
    assert!(
        row("client-3").starts_with("  client-3    -"),
        "{}",
        matrix.join("\n")
    );
    assert!(
        row("controller").ends_with("tcp/41194 110/110  tcp/41194 110/110  -"),
        "{}",
        matrix.join("\n")
    );
}

#[test]
fn no_progress_bar_unless_stderr_is_a_terminal() {
    let run = sim(&["run", "--seeds", "2", "scenarios/wireguard-star.toml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stderr, "", "stderr is a pipe here: nothing drawn");
}

#[test]
fn output_is_deterministic() {
    let a = sim(&[
        "plan",
        "--format",
        "json",
        "scenarios/eduvpn-multinode.toml",
    ]);
    let b = sim(&[
        "plan",
        "--format",
        "json",
        "scenarios/eduvpn-multinode.toml",
    ]);
    assert_eq!(a.stdout, b.stdout);
}

// ---------------------------------------------------------------------------
// (b) Bad input: exit 2 (or 1 for findings), located message, no panic.
// ---------------------------------------------------------------------------

/// A small valid scenario the cases below break in one place each.
const BASE: &str = r#"[scenario]
name = "tiny"
seed = 1

[sites.hq]
kind = "datacenter"
cidrs = ["10.1.0.0/16"]

[subnets.lan]
site = "hq"
cidr = "10.1.0.0/24"

[hosts.app]
site = "hq"

[[hosts.app.interfaces]]
name = "eth0"
subnet = "lan"
"#;

#[test]
fn base_scenario_is_clean() {
    let run = check_text("ok.toml", BASE);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout, "0 errors, 0 warnings in 1 file\n");
}

#[test]
fn malformed_toml() {
    let run = check_text("bad.toml", "[scenario]\nname = \"x\nseed = 1\n");
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stdout.contains("bad.toml:2:"), "{}", run.stdout);
    assert!(run.stdout.contains("error[syntax]"), "{}", run.stdout);
}

#[test]
fn unknown_field_suggests_the_right_name() {
    let run = check_text(
        "bad.toml",
        BASE.replace(
            "site = \"hq\"\n\n[[hosts",
            "site = \"hq\"\nforwardng = true\n\n[[hosts",
        ),
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("bad.toml:15:1: error[unknown-field]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("field `hosts.app"), "{}", run.stdout);
    assert!(
        run.stdout.contains("did you mean `forwarding`?"),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_cidr() {
    let run = check_text(
        "bad.toml",
        BASE.replace("cidr = \"10.1.0.0/24\"", "cidr = \"10.1.0.0/33\""),
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("bad.toml:11:8: error[invalid-value]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("field `subnets.lan.cidr`"),
        "{}",
        run.stdout
    );
}

#[test]
fn dangling_host_reference_has_a_hint() {
    let text = format!("{BASE}\n[[expect.reach]]\nfrom = \"app\"\nto = \"ap\"\n");
    let run = check_text("bad.toml", text);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout
            .contains("bad.toml:22:1: error[dangling-reference]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("no host named `ap`"), "{}", run.stdout);
    assert!(
        run.stdout.contains("field `expect.reach[0].to`"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("did you mean `app`?"), "{}", run.stdout);
}

#[test]
fn duplicate_table_is_a_duplicate_name() {
    let text = format!("{BASE}\n[hosts.app]\nsite = \"hq\"\n");
    let run = check_text("bad.toml", text);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("bad.toml:20:8: error[duplicate-name]"),
        "{}",
        run.stdout
    );
    // The snippet shows the second `[hosts.app]` header, the message names
    // the key and the field is located.
    assert!(run.stdout.contains(" 20 | [hosts.app]"), "{}", run.stdout);
    assert!(
        run.stdout.contains("`app` is defined twice"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("field `hosts.app`"), "{}", run.stdout);
}

#[test]
fn duplicate_interface_name() {
    let text = format!("{BASE}\n[[hosts.app.interfaces]]\nname = \"eth0\"\nsubnet = \"lan\"\n");
    let run = check_text("bad.toml", text);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("error[duplicate-name]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("bad.toml:21:1:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("field `hosts.app.interfaces[1].name`"),
        "{}",
        run.stdout
    );
}

#[test]
fn huge_file_fails_fast() {
    let dir = TempDir::new("huge");
    let path = dir.0.join("huge.toml");
    // Sparse: the size check must refuse it before reading a byte.
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    file.set_len(vpnsim_max_bytes() + 1)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    #[allow(clippy::disallowed_methods)] // measuring the test itself, not product output
    let started = std::time::Instant::now();
    let run = dir.sim(&["check", "huge.toml"]);
    let elapsed = started.elapsed();
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("huge.toml:1:1: error[file-too-large]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("limited to 16777216 bytes"),
        "{}",
        run.stdout
    );
    assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
}

/// `vpnsim_topology::MAX_FILE_BYTES`, restated: the limit is part of the
/// user-facing contract, so a change must show up here.
fn vpnsim_max_bytes() -> u64 {
    16 * 1024 * 1024
}

/// Two forwarding hosts that each route 10.9.0.0/24 to the other.
/// The `routing-loop` code is implemented by the reachability engine in
/// crates/verify/src/reach.rs (owned by the lead); this test pins the CLI's
/// side: a loop is a finding (exit 1), not bad input.
#[test]
fn static_routing_loop_between_two_hosts() {
    let text = r#"[scenario]
name = "loop"
seed = 1

[sites.hq]
kind = "datacenter"
cidrs = ["10.1.0.0/16"]

[subnets.lan]
site = "hq"
cidr = "10.1.0.0/24"

[hosts.a]
site = "hq"
forwarding = true
interfaces = [{ name = "eth0", subnet = "lan", address = "10.1.0.10" }]
routes = [{ to = "10.9.0.0/24", via = "10.1.0.11" }]

[hosts.b]
site = "hq"
forwarding = true
interfaces = [{ name = "eth0", subnet = "lan", address = "10.1.0.11" }]
routes = [{ to = "10.9.0.0/24", via = "10.1.0.10" }]
"#;
    let run = check_text("loop.toml", text);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("error[routing-loop]"), "{}", run.stdout);
    assert!(
        run.stdout.contains("loop.toml:17:11:") || run.stdout.contains("loop.toml:23:11:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("field `hosts.a.routes[0]`")
            || run.stdout.contains("field `hosts.b.routes[0]`"),
        "{}",
        run.stdout
    );
}

#[test]
fn wrong_type() {
    let run = check_text("bad.toml", BASE.replace("seed = 1", "seed = \"one\""));
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("bad.toml:3:8: error[invalid-value]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("field `scenario.seed`"),
        "{}",
        run.stdout
    );
}

#[test]
fn empty_file() {
    let run = check_text("empty.toml", "");
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("empty.toml:1:1: error[missing-field]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("`scenario`"), "{}", run.stdout);
}

#[test]
fn non_utf8_file_points_at_the_bad_byte() {
    let mut bytes = BASE.as_bytes().to_vec();
    let at = BASE.find("tiny").unwrap_or(0);
    bytes[at + 1] = 0xff;
    let run = check_text("latin.toml", bytes);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("latin.toml:2:10: error[not-utf8]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("byte 0xff"), "{}", run.stdout);
}

#[test]
fn nonexistent_file() {
    let run = check_text("ok.toml", BASE);
    assert_eq!(run.code, 0);
    let dir = TempDir::new("missing");
    let run = dir.sim(&["check", "missing.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("missing.toml:1:1: error[read-error]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("cannot read missing.toml"),
        "{}",
        run.stdout
    );
}

#[test]
fn directory_instead_of_file() {
    let dir = TempDir::new("dir");
    std::fs::create_dir_all(dir.0.join("scenario.toml")).unwrap_or_else(|e| panic!("{e}"));
    let run = dir.sim(&["check", "scenario.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("scenario.toml:1:1: error[read-error]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("is a directory"), "{}", run.stdout);
}

#[test]
fn one_bad_file_among_good_ones_is_reported_with_the_others() {
    let dir = TempDir::new("mixed");
    dir.write("ok.toml", BASE)
        .write("bad.toml", BASE.replace("seed = 1", "seed = \"one\""));
    let run = dir.sim(&["check", "ok.toml", "bad.toml", "gone.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stdout.contains("bad.toml:3:8:"), "{}", run.stdout);
    assert!(run.stdout.contains("gone.toml:1:1:"), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("2 errors, 0 warnings in 3 files\n"),
        "{}",
        run.stdout
    );

    let run = dir.sim(&["check", "--format", "json", "ok.toml", "bad.toml"]);
    assert_eq!(run.code, 2);
    let findings = json(&run.stdout);
    assert_eq!(codes(&findings), ["invalid-value"]);
    assert_eq!(findings["findings"][0]["file"], "bad.toml");
    assert_eq!(findings["findings"][0]["line"], 3);
    assert_eq!(findings["findings"][0]["column"], 8);
    assert_eq!(findings["findings"][0]["field"], "scenario.seed");
}

#[test]
fn plan_and_run_refuse_bad_input_with_exit_2() {
    let dir = TempDir::new("plan-bad");
    dir.write("bad.toml", BASE.replace("seed = 1", "seed = \"one\""));
    let plan = dir.sim(&["plan", "bad.toml"]);
    assert_eq!(plan.code, 2);
    assert!(plan.stdout.is_empty(), "{}", plan.stdout);
    assert!(
        plan.stderr.contains("bad.toml:3:8: error[invalid-value]"),
        "{}",
        plan.stderr
    );
    let plan_json = dir.sim(&["plan", "--format", "json", "bad.toml"]);
    assert_eq!(plan_json.code, 2);
    assert_eq!(codes(&json(&plan_json.stdout)), ["invalid-value"]);
    let run = dir.sim(&["run", "bad.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stdout.contains("bad.toml:3:8: error[invalid-value]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Simulation: not run"), "{}", run.stdout);
}

#[test]
fn exhausted_pool_makes_plan_exit_1_after_printing_the_plan() {
    // A cloud /30 keeps all four addresses for AWS: nothing to allocate.
    let text = BASE
        .replace("datacenter", "cloud-vpc")
        .replace("10.1.0.0/24", "10.1.0.0/30");
    let dir = TempDir::new("exhausted");
    dir.write("full.toml", text);
    let plan = dir.sim(&["plan", "full.toml"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stdout.contains("Pools:"), "{}", plan.stdout);
    assert!(
        plan.stderr.contains("error[pool-exhausted]"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("field `hosts.app.interfaces[0]`"),
        "{}",
        plan.stderr
    );
    let plan_json = json(&dir.sim(&["plan", "--format", "json", "full.toml"]).stdout);
    assert_eq!(plan_json["findings"][0]["code"], "pool-exhausted");
    let check = dir.sim(&["check", "full.toml"]);
    assert_eq!(check.code, 1, "{}", check.all());
}

// ---------------------------------------------------------------------------
// (c) Schema, completions, man page, usage.
// ---------------------------------------------------------------------------

#[test]
fn schema_is_json_and_describes_hosts() {
    let run = sim(&["schema"]);
    assert_eq!(run.code, 0);
    let schema = json(&run.stdout);
    assert!(schema.is_object());
    assert!(run.stdout.contains("\"hosts\""));
}

#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let run = sim(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("sim"), "{shell} completion is empty");
    }
    let man = sim(&["man"]);
    assert_eq!(man.code, 0);
    assert!(man.stdout.contains(".TH sim"), "{}", man.stdout);
    assert!(man.stdout.contains("check"));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for args in [
        &["frobnicate"][..],
        &["check"],
        &["check", "--format", "yaml", "x.toml"],
        &["run", "--seed", "-1", "x.toml"],
        &[],
    ] {
        let run = sim(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.all());
        assert!(!run.stderr.is_empty(), "{args:?} explains itself");
    }
    let help = sim(&["--help"]);
    assert_eq!(help.code, 0);
    for word in [
        "check",
        "plan",
        "run",
        "schema",
        "completions",
        "man",
        "Exit codes",
    ] {
        assert!(help.stdout.contains(word), "help lacks {word}");
    }
    let version = sim(&["--version"]);
    assert_eq!(version.code, 0);
    assert_eq!(
        version.stdout,
        format!("sim {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn quiet_and_verbose() {
    let dir = TempDir::new("verbosity");
    dir.write("ok.toml", BASE);
    let quiet = dir.sim(&["-q", "check", "ok.toml"]);
    assert_eq!(quiet.code, 0);
    assert_eq!(quiet.stdout, "", "quiet prints nothing when nothing fails");
    let verbose = dir.sim(&["check", "-vv", "ok.toml"]);
    assert_eq!(verbose.code, 0);
    assert!(verbose.stderr.contains("loaded"), "{}", verbose.stderr);
    assert_eq!(
        dir.sim(&["-q", "-v", "check", "ok.toml"]).code,
        2,
        "-q and -v conflict"
    );
}

// ---------------------------------------------------------------------------
// (d) Warnings alone do not fail a check.
// ---------------------------------------------------------------------------

#[test]
fn warnings_only_exit_0() {
    // 12.11.0.0/16 is public space used as private: a warning, not an error.
    let text = BASE
        .replace("10.1.0.0/16", "12.11.0.0/16")
        .replace("10.1.0.0/24", "12.11.0.0/24");
    let dir = TempDir::new("warnings");
    dir.write("warn.toml", text);
    let run = dir.sim(&["check", "warn.toml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("warning[public-address-space]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("0 errors, "), "{}", run.stdout);
    assert!(
        !run.stdout.contains("0 errors, 0 warnings"),
        "{}",
        run.stdout
    );
    let json_run = dir.sim(&["check", "--format", "json", "warn.toml"]);
    assert_eq!(json_run.code, 0);
    assert!(!has_error_finding(&json(&json_run.stdout)));
    let quiet = dir.sim(&["-q", "check", "warn.toml"]);
    assert_eq!(quiet.stdout, "", "quiet hides warnings");
}

// ---------------------------------------------------------------------------
// (e) sim gen, sim diff, sim keys (issue 3).
// ---------------------------------------------------------------------------

fn star_scenario() -> String {
    workspace_root()
        .join("scenarios/wireguard-star.toml")
        .display()
        .to_string()
}

/// Every file under `dir` with its mode and contents, sorted by path.
fn tree(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let mode = std::fs::metadata(&path)
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0);
                let contents = std::fs::read(&path).unwrap_or_default();
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                out.push((rel, mode, contents));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The star's hub (the leader, `node1` in wireguard-star.toml).
const HUB: &str = "node1";

fn hub_conf(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(HUB).join("etc/wireguard/wg0.conf"))
        .unwrap_or_else(|e| panic!("{HUB}/etc/wireguard/wg0.conf: {e}"))
}

#[test]
fn gen_without_a_key_source_refuses_and_explains_both() {
    let dir = TempDir::new("gen-nokeys");
    let run = dir.sim(&["gen", &star_scenario(), "-o", "out"]);
    run.assert_no_panic();
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("--keys KEYDIR") && run.stderr.contains("--demo-keys"),
        "{}",
        run.stderr
    );
    assert!(!dir.0.join("out").exists(), "nothing written");
}

#[test]
fn gen_with_demo_keys_writes_a_reproducible_tree_with_manifest_and_modes() {
    let dir = TempDir::new("gen-demo");
    let first = dir.sim(&["gen", &star_scenario(), "-o", "a", "--demo-keys"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stdout.contains("DEMO keys"), "{}", first.stdout);
    let second = dir.sim(&["gen", &star_scenario(), "-o", "b", "--demo-keys"]);
    assert_eq!(second.code, 0, "{}", second.all());
    let a = tree(&dir.0.join("a"));
    assert_eq!(
        a,
        tree(&dir.0.join("b")),
        "same inputs, byte-identical trees"
    );
    assert!(a.len() > 1, "files besides the manifest");

    let manifest = json(&String::from_utf8_lossy(
        &a.iter()
            .find(|f| f.0 == "manifest.json")
            .map(|f| f.2.clone())
            .unwrap_or_default(),
    ));
    let listed = manifest["files"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        listed.len(),
        a.len() - 1,
        "the manifest lists every file:\n{manifest:#}"
    );
    for (path, mode, contents) in a.iter().filter(|f| f.0 != "manifest.json") {
        let entry = listed
            .iter()
            .find(|e| {
                format!(
                    "{}/{}",
                    e["host"].as_str().unwrap_or(""),
                    e["path"].as_str().unwrap_or("")
                ) == *path
            })
            .unwrap_or_else(|| panic!("{path} missing from the manifest"));
        assert_eq!(
            entry["mode"].as_str(),
            Some(format!("{mode:04o}").as_str()),
            "{path}"
        );
        let text = String::from_utf8_lossy(contents);
        if path.ends_with("wg0.conf") {
            assert_eq!(*mode, 0o600, "{path} holds a private key");
            assert!(
                text.contains("DEMO KEY"),
                "{path} must say its key is a demo key"
            );
        }
    }
    assert!(hub_conf(&dir.0.join("a")).contains("[Peer]"));
}

#[test]
fn gen_with_a_key_store_reuses_keys_and_rotate_changes_only_that_host() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("gen-store");
    let run = dir.sim(&["gen", &star_scenario(), "-o", "a", "--keys", "keys"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let a = tree(&dir.0.join("a"));
    assert!(
        a.iter()
            .all(|(_, _, c)| !String::from_utf8_lossy(c).contains("DEMO KEY")),
        "production keys are not demo keys"
    );
    for (path, mode, _) in tree(&dir.0.join("keys")) {
        if path.ends_with(".key") {
            assert_eq!(mode, 0o600, "key store file {path}");
        }
    }
    let mode = std::fs::metadata(dir.0.join("keys"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o700);
    let again = dir.sim(&["gen", &star_scenario(), "-o", "b", "--keys", "keys"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(
        a,
        tree(&dir.0.join("b")),
        "regenerating never rotates a key"
    );

    let list = dir.sim(&["keys", "list", "--keys", "keys"]);
    assert_eq!(list.code, 0, "{}", list.all());
    assert!(
        list.stdout.contains("wireguard/node1/wg0"),
        "{}",
        list.stdout
    );

    let rotate = dir.sim(&["keys", "rotate", "--keys", "keys", "--host", HUB]);
    assert_eq!(rotate.code, 0, "{}", rotate.all());
    assert!(
        rotate.stdout.contains("rotated wireguard/node1/wg0"),
        "{}",
        rotate.stdout
    );
    let after = dir.sim(&["gen", &star_scenario(), "-o", "c", "--keys", "keys"]);
    assert_eq!(after.code, 0, "{}", after.all());
    let changed: Vec<String> = tree(&dir.0.join("c"))
        .into_iter()
        .zip(a)
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.0)
        .collect();
    assert!(
        changed.iter().any(|p| p.starts_with("node1/")),
        "the leader's key changed: {changed:?}"
    );
    assert!(
        changed
            .iter()
            .filter(|p| p.as_str() != "manifest.json")
            .all(|p| p.ends_with("etc/wireguard/wg0.conf")
                || p.contains("/usr/local/sbin/vpnsim-promote-")),
        "only files holding the leader's keys (its wg0.conf, the peers' PublicKey lines, promotion scripts) change: {changed:?}"
    );
    assert!(
        changed.len() < tree(&dir.0.join("c")).len(),
        "firewall, sysctl and other files keep their bytes"
    );
    let nothing = dir.sim(&["keys", "rotate", "--keys", "keys", "--host", "no-such-host"]);
    assert_eq!(nothing.code, 2, "{}", nothing.all());
}

#[test]
fn gen_failure_leaves_the_old_tree_untouched() {
    let dir = TempDir::new("gen-fail");
    assert_eq!(
        dir.sim(&["gen", &star_scenario(), "-o", "out", "--demo-keys"])
            .code,
        0
    );
    let before = tree(&dir.0.join("out"));
    let run = dir.sim(&[
        "gen",
        &star_scenario(),
        "-o",
        "out",
        "--demo-keys",
        "--promote",
        "no-such-worker",
    ]);
    run.assert_no_panic();
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("no-such-worker"), "{}", run.stderr);
    assert_eq!(before, tree(&dir.0.join("out")));
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(leftovers, ["out"], "no temporary directory remains");
}

#[test]
fn diff_ignores_peer_order_and_comments_and_reports_a_changed_allowed_ips() {
    let dir = TempDir::new("diff");
    assert_eq!(
        dir.sim(&["gen", &star_scenario(), "-o", "hosts", "--demo-keys"])
            .code,
        0
    );
    let clean = dir.sim(&[
        "diff",
        &star_scenario(),
        "--against",
        "hosts",
        "--demo-keys",
    ]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(clean.stdout.contains("no drift"), "{}", clean.stdout);

    // Reverse the peers and add a comment: the same configuration.
    let hub = hub_conf(&dir.0.join("hosts"));
    let mut blocks: Vec<&str> = hub.split("\n[Peer]").collect();
    let head = blocks.remove(0);
    blocks.reverse();
    let reordered = format!(
        "# collected from the host\n{head}{}",
        blocks
            .iter()
            .map(|b| format!("\n[Peer]{b}"))
            .collect::<String>()
    );
    dir.write("hosts/node1/etc/wireguard/wg0.conf", &reordered);
    let same = dir.sim(&[
        "diff",
        &star_scenario(),
        "--against",
        "hosts",
        "--demo-keys",
    ]);
    assert_eq!(same.code, 0, "{}", same.all());

    // A changed AllowedIPs is drift, named by host and file.
    let line = hub
        .lines()
        .find(|l| l.starts_with("AllowedIPs"))
        .unwrap_or_else(|| panic!("no AllowedIPs in\n{hub}"));
    let changed = hub.replacen(line, "AllowedIPs = 192.0.2.99/32", 1);
    dir.write("hosts/node1/etc/wireguard/wg0.conf", &changed);
    let drift = dir.sim(&[
        "diff",
        &star_scenario(),
        "--against",
        "hosts",
        "--demo-keys",
    ]);
    assert_eq!(drift.code, 1, "{}", drift.all());
    assert!(
        drift.stdout.contains("node1:") && drift.stdout.contains("etc/wireguard/wg0.conf: changed"),
        "{}",
        drift.stdout
    );
    assert!(
        drift.stdout.contains("+ AllowedIPs = 192.0.2.99/32"),
        "{}",
        drift.stdout
    );
    assert!(
        !drift.stdout.contains("PrivateKey = ") || drift.stdout.contains("<secret>"),
        "{}",
        drift.stdout
    );

    // A removed file is drift too.
    std::fs::remove_file(dir.0.join("hosts/node1/etc/wireguard/wg0.conf"))
        .unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.sim(&[
        "diff",
        &star_scenario(),
        "--against",
        "hosts",
        "--demo-keys",
    ]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stdout.contains("etc/wireguard/wg0.conf: missing"),
        "{}",
        missing.stdout
    );
}

#[test]
fn run_writes_pcaps_that_tcpdump_reads() {
    let dir = TempDir::new("pcap");
    let run = dir.sim(&[
        "run",
        &star_scenario(),
        "--pcap",
        "captures",
        "--trace",
        "trace.txt",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let trace = std::fs::read_to_string(dir.0.join("trace.txt")).unwrap_or_default();
    assert!(
        trace.lines().count() > 10,
        "a trace line per event:\n{trace}"
    );
    for (file, expect) in [
        // WireGuard handshake initiation (148 B) and response (92 B) on the WAN.
        ("internet.pcap", "UDP, length 148"),
        ("internet.pcap", "UDP, length 92"),
        // The probes inside the tunnel, as the hub's wg0 sees them.
        ("node1-wg0.pcap", "ICMP echo request"),
    ] {
        let out = Command::new("tcpdump")
            .args(["-nr"])
            .arg(dir.0.join("captures").join(file))
            .output()
            .unwrap_or_else(|e| {
                panic!("tcpdump (scripts/test installs Debian package `tcpdump`): {e}")
            });
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tcpdump -r {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(expect),
            "{file} lacks `{expect}`:\n{}",
            text.lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// (f) sim run --configs DIR: a tree as collected from hosts, with the
// mistakes people make on them. Each must show up as the failed expectation
// it breaks, with evidence naming the cause; a file that does not parse is
// bad input naming the file.
// ---------------------------------------------------------------------------

/// `sim gen SCENARIO -o tree --demo-keys` in a fresh scratch directory.
fn generated_tree(scenario: &str, tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let file = workspace_root().join(format!("scenarios/{scenario}.toml"));
    let gen_run = dir.sim(&[
        "gen",
        &file.display().to_string(),
        "-o",
        "tree",
        "--demo-keys",
    ]);
    assert_eq!(gen_run.code, 0, "{}", gen_run.all());
    dir
}

/// Rewrites `tree/<path>`; the edit must change something.
fn edit(dir: &TempDir, path: &str, change: impl FnOnce(&str) -> String) {
    let file = dir.0.join("tree").join(path);
    let before =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let after = change(&before);
    assert_ne!(before, after, "the edit of {path} changed nothing");
    std::fs::write(&file, after).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// `sim run SCENARIO --configs tree` (plus `extra` arguments).
fn run_tree(dir: &TempDir, scenario: &str, extra: &[&str]) -> Run {
    let file = workspace_root()
        .join(format!("scenarios/{scenario}.toml"))
        .display()
        .to_string();
    let mut args = vec!["run", file.as_str(), "--configs", "tree"];
    args.extend_from_slice(extra);
    dir.sim(&args)
}

/// The row of the text report's expectation table for `field`.
fn expectation_row<'a>(stdout: &'a str, field: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(field))
        .unwrap_or_else(|| panic!("no row for {field} in\n{stdout}"))
}

/// Exit 1 and exactly the expectations in `failed` FAIL.
fn assert_fails_exactly(run: &Run, all: &[&str], failed: &[&str]) {
    assert_eq!(run.code, 1, "{}", run.all());
    for field in all {
        let row = expectation_row(&run.stdout, field);
        let want = if failed.contains(field) {
            "FAIL"
        } else {
            "PASS"
        };
        assert!(row.trim_start().starts_with(want), "{field}: {row}");
    }
}

const STAR_REACH: [&str; 4] = [
    "expect.reach[0]",
    "expect.reach[1]",
    "expect.reach[2]",
    "expect.reach[3]",
];

#[test]
fn configs_untouched_generated_trees_hold_every_expectation() {
    for scenario in ["wireguard-star", "eduvpn-multinode"] {
        let dir = generated_tree(scenario, "configs-clean");
        let run = run_tree(&dir, scenario, &[]);
        assert_eq!(run.code, 0, "{scenario}:\n{}", run.all());
        assert!(
            run.stdout.contains("Host files: read from tree"),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn configs_with_a_mistyped_peer_public_key_fail_reach_through_that_peer() {
    // node2's copy of the hub's public key, one character off (still a
    // valid key): node2's handshakes are made for a key the hub does not
    // have, so node2 reaches nobody; the other workers are unaffected.
    let dir = generated_tree("wireguard-star", "configs-key");
    edit(&dir, "node2/etc/wireguard/wg0.conf", |text| {
        let line = text
            .lines()
            .find(|l| l.starts_with("PublicKey = "))
            .unwrap_or_else(|| panic!("no peer key in\n{text}"));
        let key = &line["PublicKey = ".len()..];
        let typo = if key.starts_with('A') { "B" } else { "A" };
        text.replacen(line, &format!("PublicKey = {typo}{}", &key[1..]), 1)
    });
    let run = run_tree(&dir, "wireguard-star", &[]);
    assert_fails_exactly(&run, &STAR_REACH, &["expect.reach[0]", "expect.reach[1]"]);
    assert!(
        expectation_row(&run.stdout, "expect.reach[0]").contains("0/110 answered"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("wg0: handshake initiation from 178.128.169.93:55820 does not decrypt"),
        "the drop counters name the cause:\n{}",
        run.stdout
    );
    let junit = run_tree(&dir, "wireguard-star", &["--format", "junit"]);
    assert_eq!(junit.code, 1);
    assert_eq!(
        junit.stdout.matches("<failure ").count(),
        2,
        "{}",
        junit.stdout
    );
    assert!(
        junit
            .stdout
            .contains("0/110 answered, first failure 10.000000 s</failure>"),
        "{}",
        junit.stdout
    );
}

#[test]
fn configs_missing_an_allowed_ips_line_fail_reach_to_that_peer() {
    // The hub forgets node4's AllowedIPs: it has no route into the tunnel
    // to node4 and drops what node4 sends; every path to or from node4
    // breaks, node2 -> node3 still works.
    let dir = generated_tree("wireguard-star", "configs-allowed");
    edit(&dir, "node1/etc/wireguard/wg0.conf", |text| {
        text.replacen("AllowedIPs = 10.5.4.4/32\n", "", 1)
    });
    let run = run_tree(&dir, "wireguard-star", &[]);
    assert_fails_exactly(
        &run,
        &STAR_REACH,
        &["expect.reach[1]", "expect.reach[2]", "expect.reach[3]"],
    );
    assert!(
        run.stdout.contains("wg0: no peer allows 10.5.4.4"),
        "{}",
        run.stdout
    );
}

#[test]
fn configs_with_ip_forward_off_on_the_hub_fail_reach_between_workers() {
    // Workers reach each other only through the hub; the hub itself still
    // reaches node4.
    let dir = generated_tree("wireguard-star", "configs-forward");
    edit(&dir, "node1/etc/sysctl.d/90-vpnsim.conf", |text| {
        text.replace("net.ipv4.ip_forward = 1", "net.ipv4.ip_forward = 0")
    });
    let run = run_tree(&dir, "wireguard-star", &[]);
    assert_fails_exactly(
        &run,
        &STAR_REACH,
        &["expect.reach[0]", "expect.reach[1]", "expect.reach[2]"],
    );
    assert!(
        run.stdout
            .contains("not addressed to this host and net.ipv4.ip_forward is off"),
        "{}",
        run.stdout
    );
}

#[test]
fn configs_with_a_changed_firewall_rule_fail_the_expectation_it_guarded() {
    // eduvpn-multinode: node-a accepts vpn-daemon (tcp/41194) from the
    // controller only.
    let rule = "-A INPUT -s 145.0.6.71/32 -p tcp -m tcp --dport 41194";
    let all = [
        "expect.reach[2]",
        "expect.reach[3]",
        "expect.isolated[0]",
        "expect.isolated[1]",
        "expect.isolated[2]",
    ];

    // Opened to everyone: clients of both nodes reach node-a's daemon.
    let dir = generated_tree("eduvpn-multinode", "configs-fw-open");
    edit(&dir, "node-a/etc/iptables/rules.v4", |text| {
        text.replacen(rule, "-A INPUT -p tcp -m tcp --dport 41194", 1)
    });
    let open = run_tree(&dir, "eduvpn-multinode", &[]);
    assert_fails_exactly(&open, &all, &["expect.isolated[0]", "expect.isolated[1]"]);
    let row = expectation_row(&open.stdout, "expect.isolated[0]");
    assert!(
        row.contains("tcp/41194") && !row.contains(" 0/"),
        "answered probes are the evidence: {row}"
    );

    // Dropped: the controller no longer reaches node-a's daemon, and the
    // probes are refused by the final REJECT.
    let dir = generated_tree("eduvpn-multinode", "configs-fw-drop");
    edit(&dir, "node-a/etc/iptables/rules.v4", |text| {
        text.lines()
            .filter(|l| !l.starts_with(rule))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    let dropped = run_tree(&dir, "eduvpn-multinode", &[]);
    assert_fails_exactly(&dropped, &all, &["expect.reach[2]"]);
    let row = expectation_row(&dropped.stdout, "expect.reach[2]");
    assert!(
        row.contains("tcp/41194 0/110 answered") && row.contains("AdminProhibited unreachable"),
        "{row}"
    );
}

#[test]
fn configs_with_a_file_that_does_not_parse_exit_2_naming_it() {
    let dir = generated_tree("wireguard-star", "configs-parse");
    edit(&dir, "node3/etc/wireguard/wg0.conf", |text| {
        text.replacen("[Peer]", "[Peer]\nPersistentKeepalive = often", 1)
    });
    let run = run_tree(&dir, "wireguard-star", &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("the simulation could not start: node3/etc/wireguard/wg0.conf: line"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("Simulation: could not start"),
        "{}",
        run.stdout
    );
}
