// Command selftest checks the tlog_oracle binary without Palisade: it builds
// C2SP tiled logs with golang.org/x/mod/sumdb/tlog and note, serves them on
// 127.0.0.1 with net/http, runs the oracle against good and broken copies,
// and expects it to pass or fail (with the right reason) each time.
//
//	selftest -oracle PATH_TO_tlog_oracle
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const origin = "example.com/palisade-selftest"

// ---- an in-memory log ----

type memLog struct {
	entries [][]byte
	hashes  []tlog.Hash // stored hashes, as tlog.StoredHashes lays them out
}

func (l *memLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

func (l *memLog) add(e []byte) {
	hs, err := tlog.StoredHashes(int64(len(l.entries)), e, l)
	check(err)
	l.entries = append(l.entries, e)
	l.hashes = append(l.hashes, hs...)
}

func (l *memLog) root(n int64) tlog.Hash {
	if n == 0 {
		return tlog.Hash(sha256.Sum256(nil)) // RFC 6962 empty tree
	}
	h, err := tlog.TreeHash(n, l)
	check(err)
	return h
}

func entryText(i int, variant string) []byte {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s%d", variant, i)))
	s := fmt.Sprintf(`{"index":%d,"file":"pkg%s-%d.0-py3-none-any.whl","sha256":"%x"}`, i, variant, i, sum)
	if i%97 == 3 {
		s += " café ✓" // some non-ASCII UTF-8
	}
	return []byte(s)
}

func newLog(n int, variant func(i int) string) *memLog {
	l := &memLog{}
	for i := 0; i < n; i++ {
		l.add(entryText(i, variant(i)))
	}
	return l
}

// ---- writing a C2SP log directory ----

// c2spPath: Go's tile/8/L/N[.p/W] -> C2SP tile/L/N[.p/W]; tile/8/data -> tile/entries.
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	if strings.HasPrefix(p, "data/") {
		return "tile/entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

func writeFile(path string, data []byte) {
	check(os.MkdirAll(filepath.Dir(path), 0o755))
	check(ioutil.WriteFile(path, data, 0o644))
}

func checkpointBody(l *memLog, n int64, ext string) string {
	return fmt.Sprintf("%s\n%d\n%s\n%s", origin, n, l.root(n), ext)
}

func sign(body string, signers ...note.Signer) []byte {
	msg, err := note.Sign(&note.Note{Text: body}, signers...)
	check(err)
	return msg
}

// publish writes, under dir/log, the tiles and bundles of every tree size in
// steps (as a log publishing checkpoints at those sizes would), and returns
// the signed checkpoint for each size. The last one is served.
func publish(dir string, l *memLog, steps []int64, signers ...note.Signer) map[int64][]byte {
	cps := map[int64][]byte{}
	prev := int64(0)
	for _, n := range steps {
		for _, t := range tlog.NewTiles(8, prev, n) {
			data, err := tlog.ReadTileData(t, l)
			check(err)
			writeFile(filepath.Join(dir, "log", c2spPath(t)), data)
			if t.L == 0 {
				b := tlog.Tile{H: 8, L: -1, N: t.N, W: t.W}
				var buf bytes.Buffer
				for i := t.N * 256; i < t.N*256+int64(t.W); i++ {
					var lp [2]byte
					binary.BigEndian.PutUint16(lp[:], uint16(len(l.entries[i])))
					buf.Write(lp[:])
					buf.Write(l.entries[i])
				}
				writeFile(filepath.Join(dir, "log", c2spPath(b)), buf.Bytes())
			}
		}
		cps[n] = sign(checkpointBody(l, n, ""), signers...)
		prev = n
	}
	writeFile(filepath.Join(dir, "log", "checkpoint"), cps[prev])
	return cps
}

func proofFile(path string, l *memLog, index, size int64, cp []byte) string {
	p, err := tlog.ProveRecord(size, index, l)
	check(err)
	var b strings.Builder
	b.WriteString("c2sp.org/tlog-proof@v1\n")
	b.WriteString("extra " + base64.StdEncoding.EncodeToString(l.entries[index]) + "\n")
	fmt.Fprintf(&b, "index %d\n", index)
	for _, h := range p {
		b.WriteString(h.String() + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	writeFile(path, []byte(b.String()))
	return path
}

func copyDir(src, dst string) {
	check(filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := ioutil.ReadFile(p)
		if err != nil {
			return err
		}
		return ioutil.WriteFile(filepath.Join(dst, rel), b, 0o644)
	}))
}

func mutate(path string, f func([]byte) []byte) {
	b, err := ioutil.ReadFile(path)
	check(err)
	check(ioutil.WriteFile(path, f(b), 0o644))
}

func check(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "selftest setup: %v\n", err)
		os.Exit(2)
	}
}

// ---- running the oracle ----

type outcome struct {
	code   int
	stdout string
	stderr string
}

var oracle string

func runOracle(args ...string) outcome {
	cmd := exec.Command(oracle, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		check(err)
	}
	return outcome{code, so.String(), se.String()}
}

var passed, failed int

func report(name string, problem string) {
	if problem == "" {
		passed++
		fmt.Printf("ok    %s\n", name)
	} else {
		failed++
		fmt.Printf("FAIL  %s: %s\n", name, problem)
	}
}

// expectFail: the oracle must exit 1 with "FAIL: ...<want>..." on stderr.
func expectFail(name, want string, args ...string) {
	o := runOracle(args...)
	switch {
	case o.code != 1:
		report(name, fmt.Sprintf("exit %d, want 1 (stderr %q)", o.code, o.stderr))
	case !strings.HasPrefix(o.stderr, "FAIL: ") && !strings.Contains(o.stderr, "\nFAIL: "):
		report(name, fmt.Sprintf("stderr %q has no FAIL: line", o.stderr))
	case !containsAny(o.stderr, strings.Split(want, "|")):
		report(name, fmt.Sprintf("stderr %q does not mention %q", o.stderr, want))
	default:
		report(name, "")
	}
}

type result struct {
	Origin        string   `json:"origin"`
	Size          int64    `json:"size"`
	Root          string   `json:"root"`
	Entries       []string `json:"entries"`
	ProofsChecked int      `json:"proofs_checked"`
}

// expectPass: exit 0 and a JSON object describing exactly l's first n entries.
func expectPass(name string, l *memLog, n int64, proofs int, args ...string) {
	o := runOracle(args...)
	if o.code != 0 {
		report(name, fmt.Sprintf("exit %d, stderr %q", o.code, o.stderr))
		return
	}
	var r result
	dec := json.NewDecoder(strings.NewReader(o.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		report(name, fmt.Sprintf("stdout %q: %v", o.stdout, err))
		return
	}
	if !strings.Contains(o.stdout, `"entries":[`) {
		report(name, "entries is not a JSON array")
		return
	}
	problem := ""
	switch {
	case r.Origin != origin:
		problem = fmt.Sprintf("origin %q", r.Origin)
	case r.Size != n:
		problem = fmt.Sprintf("size %d, want %d", r.Size, n)
	case r.Root != l.root(n).String():
		problem = fmt.Sprintf("root %s, want %s", r.Root, l.root(n))
	case int64(len(r.Entries)) != n:
		problem = fmt.Sprintf("%d entries, want %d", len(r.Entries), n)
	case r.ProofsChecked != proofs:
		problem = fmt.Sprintf("proofs_checked %d, want %d", r.ProofsChecked, proofs)
	}
	for i := int64(0); problem == "" && i < n; i++ {
		if r.Entries[i] != string(l.entries[i]) {
			problem = fmt.Sprintf("entry %d is %q, want %q", i, r.Entries[i], l.entries[i])
		}
	}
	report(name, problem)
}

func main() {
	flag.StringVar(&oracle, "oracle", "", "path to the tlog_oracle binary")
	flag.Parse()
	if oracle == "" {
		fmt.Fprintln(os.Stderr, "usage: selftest -oracle PATH")
		os.Exit(2)
	}

	root, err := ioutil.TempDir("", "tlog-oracle-selftest")
	check(err)
	defer os.RemoveAll(root)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go http.Serve(ln, http.FileServer(http.Dir(root)))
	base := "http://" + ln.Addr().String()
	url := func(dir string) string { return base + "/" + dir + "/log" }
	dir := func(name string) string { return filepath.Join(root, name) }

	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	check(err)
	signer, err := note.NewSigner(skey)
	check(err)
	otherSkey, _, err := note.GenerateKey(rand.Reader, origin) // same name, other key
	check(err)
	otherSigner, err := note.NewSigner(otherSkey)
	check(err)
	witnessSkey, _, err := note.GenerateKey(rand.Reader, "witness.example")
	check(err)
	witness, err := note.NewSigner(witnessSkey)
	check(err)

	// The good log: 600 entries published at 1, 100, 300, 511, 600.
	good := newLog(600, func(int) string { return "" })
	steps := []int64{1, 100, 300, 511, 600}
	cps := publish(dir("good"), good, steps, signer)
	// Serve a 600 checkpoint with an extension line and a witness cosignature (unknown key).
	cps[600] = sign(checkpointBody(good, 600, "ext: ignored by verifiers\n"), signer, witness)
	writeFile(filepath.Join(dir("good"), "log", "checkpoint"), cps[600])
	var proofArgs []string
	for _, i := range []int64{0, 3, 255, 256, 511, 512, 599} {
		proofArgs = append(proofArgs, "-proof", proofFile(filepath.Join(root, "proofs", fmt.Sprintf("good-%d.tlog-proof", i)), good, i, 600, cps[600]))
	}
	oldProof := proofFile(filepath.Join(root, "proofs", "good-old-123.tlog-proof"), good, 123, 300, cps[300])
	proofArgs = append(proofArgs, "-proof", oldProof)
	root300 := good.root(300).String()
	common := []string{"-url", url("good"), "-vkey", vkey}
	arg := func(dirName string, extra ...string) []string {
		return append([]string{"-url", url(dirName), "-vkey", vkey}, extra...)
	}

	// --- good cases ---
	expectPass("good log, 8 proofs, consistency with 300", good, 600, 8,
		append(append(common, proofArgs...), "-old-size", "300", "-old-root", root300, "-origin", origin)...)
	expectPass("good log, trailing slash in -url", good, 600, 0, "-url", url("good")+"/", "-vkey", vkey)
	for _, n := range []int64{1, 255, 256, 511, 600} {
		expectPass(fmt.Sprintf("consistency with old size %d", n), good, 600, 0,
			append(common, "-old-size", fmt.Sprint(n), "-old-root", good.root(n).String())...)
	}
	expectPass("consistency with old size 0", good, 600, 0,
		append(common, "-old-size", "0", "-old-root", good.root(0).String())...)

	// Each published size on its own (a log that stopped there).
	for _, n := range steps[:len(steps)-1] {
		name := fmt.Sprintf("at-%d", n)
		publish(dir(name), good, steps[:indexOf(steps, n)+1], signer)
		expectPass(fmt.Sprintf("good log at size %d", n), good, n, 0, arg(name)...)
	}

	// An old checkpoint whose partial tile and bundle are gone: full-tile fallback.
	copyDir(dir("good"), dir("fallback"))
	writeFile(filepath.Join(dir("fallback"), "log", "checkpoint"), cps[300])
	check(os.Remove(filepath.Join(dir("fallback"), "log", "tile/0/001.p/44")))
	check(os.Remove(filepath.Join(dir("fallback"), "log", "tile/entries/001.p/44")))
	expectPass("size-300 checkpoint, partial tiles gone, full-tile fallback", good, 300, 0, arg("fallback")...)

	// The empty log.
	empty := &memLog{}
	writeFile(filepath.Join(dir("empty"), "log", "checkpoint"), sign(checkpointBody(empty, 0, ""), signer))
	expectPass("empty log", empty, 0, 0, arg("empty")...)
	expectFail("empty log, consistency with size 1", "larger than", append(arg("empty"), "-old-size", "1", "-old-root", good.root(1).String())...)

	// --- a changed entry ---
	copyDir(dir("good"), dir("entry"))
	mutate(filepath.Join(dir("entry"), "log", "tile/entries/001"), func(b []byte) []byte {
		off := 0
		for k := 0; k < 10; k++ { // skip 10 entries
			off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		}
		b[off+2+5] ^= 1 // a content byte of entry 266
		return b
	})
	expectFail("changed entry in a full bundle", "entry 266: record hash", arg("entry")...)

	copyDir(dir("good"), dir("entry2"))
	mutate(filepath.Join(dir("entry2"), "log", "tile/entries/002.p/88"), func(b []byte) []byte {
		b[len(b)-1] ^= 0x20 // last byte of entry 599
		return b
	})
	expectFail("changed entry in a partial bundle", "entry 599: record hash", arg("entry2")...)

	copyDir(dir("good"), dir("entry3"))
	mutate(filepath.Join(dir("entry3"), "log", "tile/entries/000"), func(b []byte) []byte { return append(b, 0, 1, 'x') })
	expectFail("extra entry appended to a bundle", "257 entries, want 256", arg("entry3")...)

	copyDir(dir("good"), dir("entry4"))
	mutate(filepath.Join(dir("entry4"), "log", "tile/entries/002.p/88"), func(b []byte) []byte { return b[:len(b)-1] })
	expectFail("truncated bundle", "truncated", arg("entry4")...)

	copyDir(dir("good"), dir("entry5"))
	check(os.Remove(filepath.Join(dir("entry5"), "log", "tile/entries/001")))
	expectFail("missing bundle", "HTTP 404", arg("entry5")...)

	// --- a changed tile byte ---
	for i, t := range []string{"tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2"} {
		name := fmt.Sprintf("tile%d", i)
		copyDir(dir("good"), dir(name))
		mutate(filepath.Join(dir(name), "log", t), func(b []byte) []byte { b[len(b)/2+7] ^= 0x80; return b })
		expectFail("changed byte in "+t, "inconsistent tile|record hash|not included", arg(name)...)
	}
	// A forged entry with its forged leaf hash in a full level-0 tile: only the
	// full tile's parent in tile/1 gives it away (x/mod's tileHashReader does
	// not check that tile against its parent here; the per-entry proof does).
	for _, idx := range []int{0, 130, 300} {
		name := fmt.Sprintf("forged%d", idx)
		copyDir(dir("good"), dir(name))
		forged := []byte(strings.Replace(string(good.entries[idx]), "whl", "WHL", 1))
		var buf bytes.Buffer
		for i := idx / 256 * 256; i < idx/256*256+256; i++ {
			e := good.entries[i]
			if i == idx {
				e = forged
			}
			var lp [2]byte
			binary.BigEndian.PutUint16(lp[:], uint16(len(e)))
			buf.Write(lp[:])
			buf.Write(e)
		}
		writeFile(filepath.Join(dir(name), "log", fmt.Sprintf("tile/entries/%03d", idx/256)), buf.Bytes())
		mutate(filepath.Join(dir(name), "log", fmt.Sprintf("tile/0/%03d", idx/256)), func(b []byte) []byte {
			h := tlog.RecordHash(forged)
			copy(b[(idx%256)*32:], h[:])
			return b
		})
		expectFail(fmt.Sprintf("forged entry %d with its leaf hash forged to match", idx), "inconsistent tile|not included", arg(name)...)
	}
	copyDir(dir("good"), dir("tile-short"))
	mutate(filepath.Join(dir("tile-short"), "log", "tile/0/002.p/88"), func(b []byte) []byte { return b[:len(b)-32] })
	expectFail("tile one hash short", "want 2816", arg("tile-short")...)

	// --- checkpoints not signed by the log's key ---
	copyDir(dir("good"), dir("otherkey"))
	writeFile(filepath.Join(dir("otherkey"), "log", "checkpoint"), sign(checkpointBody(good, 600, ""), otherSigner))
	expectFail("checkpoint signed by another key of the same name", "no signature by the log's key", arg("otherkey")...)

	copyDir(dir("good"), dir("witnessonly"))
	writeFile(filepath.Join(dir("witnessonly"), "log", "checkpoint"), sign(checkpointBody(good, 600, ""), witness))
	expectFail("checkpoint signed only by a witness", "no signature by the log's key", arg("witnessonly")...)

	copyDir(dir("good"), dir("badsig"))
	mutate(filepath.Join(dir("badsig"), "log", "checkpoint"), func(b []byte) []byte {
		return bytes.Replace(b, []byte("\n600\n"), []byte("\n601\n"), 1)
	})
	expectFail("checkpoint body changed after signing", "bad signature", arg("badsig")...)

	copyDir(dir("good"), dir("lyingroot"))
	writeFile(filepath.Join(dir("lyingroot"), "log", "checkpoint"),
		sign(fmt.Sprintf("%s\n600\n%s\n", origin, good.root(599)), signer))
	expectFail("signed checkpoint whose root the tiles do not give", "inconsistent tile", arg("lyingroot")...)

	copyDir(dir("good"), dir("badbody"))
	writeFile(filepath.Join(dir("badbody"), "log", "checkpoint"),
		sign(fmt.Sprintf("%s\n0600\n%s\n", origin, good.root(600)), signer))
	expectFail("checkpoint size with a leading zero", "leading zeros", arg("badbody")...)

	expectFail("origin differs from -origin", "want \"other.example/log\"", append(common, "-origin", "other.example/log")...)

	// --- a rewritten history ---
	forked := newLog(600, func(i int) string {
		if i == 5 {
			return "evil"
		}
		return ""
	})
	forkCps := publish(dir("forked"), forked, steps, signer)
	expectPass("rewritten log on its own is self-consistent", forked, 600, 0, arg("forked")...)
	expectFail("rewritten log vs an old checkpoint of the original", "not consistent",
		append(arg("forked"), "-old-size", "300", "-old-root", root300)...)
	expectFail("original log vs an old checkpoint of the rewritten one", "not consistent",
		append(common, "-old-size", "300", "-old-root", forked.root(300).String())...)
	expectFail("rewritten log vs the original's proof from size 300", "not consistent",
		append(arg("forked"), "-proof", oldProof)...)
	forkProof := proofFile(filepath.Join(root, "proofs", "forked-5.tlog-proof"), forked, 5, 300, forkCps[300])
	expectFail("original log vs the rewritten log's proof of its entry 5", "not consistent",
		append(common, "-proof", forkProof)...)
	expectFail("old size larger than the tree", "larger than",
		append(common, "-old-size", "601", "-old-root", root300)...)

	// --- broken proofs ---
	pdir := filepath.Join(root, "proofs")
	good256 := filepath.Join(pdir, "good-256.tlog-proof")
	bad := func(name string, f func(string) string) string {
		b, err := ioutil.ReadFile(good256)
		check(err)
		p := filepath.Join(pdir, name)
		writeFile(p, []byte(f(string(b))))
		return p
	}
	lines := func(s string) []string { return strings.SplitN(s, "\n", 4) }
	expectFail("proof with another entry", "not included", append(common, "-proof", bad("p-entry", func(s string) string {
		l := lines(s)
		return l[0] + "\nextra " + base64.StdEncoding.EncodeToString(good.entries[257]) + "\n" + l[2] + "\n" + l[3]
	}))...)
	expectFail("proof with another index", "not included", append(common, "-proof", bad("p-index", func(s string) string {
		return strings.Replace(s, "\nindex 256\n", "\nindex 257\n", 1)
	}))...)
	expectFail("proof with a hash dropped", "not included", append(common, "-proof", bad("p-drop", func(s string) string {
		l := lines(s)
		return l[0] + "\n" + l[1] + "\n" + l[2] + "\n" + l[3][strings.IndexByte(l[3], '\n')+1:]
	}))...)
	expectFail("proof whose checkpoint another key signed", "no signature by the log's key", append(common, "-proof", bad("p-key", func(s string) string {
		i := strings.Index(s, "\n\n")
		return s[:i+2] + string(sign(checkpointBody(good, 600, ""), otherSigner))
	}))...)
	expectFail("proof without extra line", "no extra line", append(common, "-proof", bad("p-noextra", func(s string) string {
		l := lines(s)
		return l[0] + "\n" + l[2] + "\n" + l[3]
	}))...)
	expectFail("proof with a wrong header", "does not start with", append(common, "-proof", bad("p-header", func(s string) string {
		return strings.Replace(s, "tlog-proof@v1", "tlog-proof@v2", 1)
	}))...)
	expectFail("missing proof file", "no such file", append(common, "-proof", filepath.Join(pdir, "nope"))...)

	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func indexOf(xs []int64, x int64) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	panic("not found")
}
