// Command tlog_oracle is an independent verifier of Palisade's transparency
// log, for the end-to-end tests. Every hash, proof and signature check is done
// by Go's golang.org/x/mod/sumdb/tlog and golang.org/x/mod/sumdb/note; this
// file is only glue: HTTP fetching, C2SP paths and the C2SP text formats
// (tlog-checkpoint, tlog-tiles entry bundles, tlog-proof).
//
// Usage:
//
//	tlog_oracle -url BASE/log -vkey KEY [-origin O] [-old-size N -old-root B64] [-proof FILE]...
//
// Exit 0 with one JSON object on stdout when everything verifies; exit 1 with
// "FAIL: <reason>" on stderr when anything does not; exit 2 on a usage error.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is fixed by c2sp.org/tlog-tiles: 256 hashes per full tile.
const tileHeight = 8
const tileWidth = 1 << tileHeight

// emptyRoot is the RFC 6962 hash of the empty tree, SHA-256 of nothing.
// (tlog.TreeHash defines the empty tree's hash as all zeros instead, so
// size 0 is handled here, without tlog.)
var emptyRoot = tlog.Hash(sha256.Sum256(nil))

type failure struct{ msg string }

func fail(format string, args ...interface{}) {
	panic(failure{fmt.Sprintf(format, args...)})
}

type usageError struct{ msg string }

func usage(format string, args ...interface{}) {
	panic(usageError{fmt.Sprintf(format, args...)})
}

type proofFlags []string

func (p *proofFlags) String() string     { return strings.Join(*p, ",") }
func (p *proofFlags) Set(s string) error { *p = append(*p, s); return nil }

type result struct {
	Origin        string   `json:"origin"`
	Size          int64    `json:"size"`
	Root          string   `json:"root"`
	Entries       []string `json:"entries"`
	ProofsChecked int      `json:"proofs_checked"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			switch e := r.(type) {
			case failure:
				fmt.Fprintf(stderr, "FAIL: %s\n", e.msg)
				code = 1
			case usageError:
				fmt.Fprintf(stderr, "FAIL: usage: %s\n", e.msg)
				code = 2
			default:
				// A panic inside x/mod on hostile input is a failure too.
				fmt.Fprintf(stderr, "FAIL: internal panic: %v\n", r)
				code = 1
			}
		}
	}()

	fs := flag.NewFlagSet("tlog_oracle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "log prefix, BASE/log (required)")
	vkey := fs.String("vkey", "", "log verifier key, name+hex8+base64 (required)")
	origin := fs.String("origin", "", "expected checkpoint origin (optional)")
	oldSize := fs.Int64("old-size", -1, "size of an earlier checkpoint to prove consistency with")
	oldRoot := fs.String("old-root", "", "base64 root hash of that earlier checkpoint")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of each HTTP request")
	var proofs proofFlags
	fs.Var(&proofs, "proof", "c2sp.org/tlog-proof@v1 file to check (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		usage("unexpected arguments %q", fs.Args())
	}
	if *url == "" || *vkey == "" {
		usage("-url and -vkey are required")
	}
	if (*oldSize >= 0) != (*oldRoot != "") {
		usage("-old-size and -old-root go together")
	}
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		usage("bad -vkey: %v", err)
	}
	verifiers := note.VerifierList(verifier)

	f := &fetcher{
		base:   strings.TrimRight(*url, "/"),
		client: &http.Client{Timeout: *timeout},
		cache:  make(map[string][]byte),
		stderr: stderr,
	}

	// 1. The signed checkpoint.
	raw, status, err := f.get("checkpoint", 1<<20)
	if err != nil {
		fail("checkpoint: %v", err)
	}
	if status != http.StatusOK {
		fail("checkpoint: HTTP %d", status)
	}
	cp := openCheckpoint("checkpoint", raw, verifiers)
	if *origin != "" && cp.origin != *origin {
		fail("checkpoint origin %q, want %q", cp.origin, *origin)
	}

	// 2. Tiles, authenticated against the signed tree by tlog.TileHashReader.
	var hr tlog.HashReader
	if cp.size == 0 {
		if cp.root != emptyRoot {
			fail("checkpoint of size 0 has root %v, want the empty-tree hash %v", cp.root, emptyRoot)
		}
	} else {
		hr = tlog.TileHashReader(tlog.Tree{N: cp.size, Hash: cp.root}, &tileReader{f})
		th, err := tlog.TreeHash(cp.size, hr)
		if err != nil {
			fail("tree hash from tiles: %v", err)
		}
		if th != cp.root {
			fail("tree hash from tiles %v != checkpoint root %v", th, cp.root)
		}
	}

	// 3. Every entry bundle, each entry against its authenticated leaf hash.
	entries := make([]string, 0, cp.size)
	for n := int64(0); n*tileWidth < cp.size; n++ {
		w := cp.size - n*tileWidth
		if w > tileWidth {
			w = tileWidth
		}
		bundle := f.bundle(n, int(w))
		indexes := make([]int64, w)
		for i := range indexes {
			indexes[i] = tlog.StoredHashIndex(0, n*tileWidth+int64(i))
		}
		hashes, err := hr.ReadHashes(indexes)
		if err != nil {
			fail("leaf hashes of entry bundle %d: %v", n, err)
		}
		if len(hashes) != len(indexes) {
			fail("leaf hashes of entry bundle %d: got %d hashes, want %d", n, len(hashes), len(indexes))
		}
		for i, e := range bundle {
			idx := n*tileWidth + int64(i)
			h := tlog.RecordHash(e)
			if h != hashes[i] {
				fail("entry %d: record hash %v != leaf hash %v in the tree", idx, h, hashes[i])
			}
			// x/mod's tileHashReader (0.7.0 and still upstream) leaves some
			// level-0 tiles unauthenticated (its parent check starts at
			// tiles[len(stx)] although the tree-hash tiles are deduplicated),
			// so the hash above may come from a forged tile. Prove each entry
			// against the signed root too; tlog.CheckRecord is pure.
			p, err := tlog.ProveRecord(cp.size, idx, hr)
			if err != nil {
				fail("entry %d: inclusion proof from tiles: %v", idx, err)
			}
			if err := tlog.CheckRecord(p, cp.size, cp.root, idx, h); err != nil {
				fail("entry %d: not included in the signed tree: %v", idx, err)
			}
			entries = append(entries, string(e))
		}
	}

	// 4. Consistency with an earlier tree head.
	if *oldSize >= 0 {
		old, err := tlog.ParseHash(*oldRoot)
		if err != nil {
			usage("bad -old-root: %v", err)
		}
		if err := consistent(cp, hr, *oldSize, old); err != nil {
			fail("old tree (size %d, root %v): %v", *oldSize, old, err)
		}
	}

	// 5. Offline inclusion proofs.
	for _, file := range proofs {
		checkProof(file, cp, hr, verifiers)
	}

	out, err := json.Marshal(result{
		Origin:        cp.origin,
		Size:          cp.size,
		Root:          cp.root.String(),
		Entries:       entries,
		ProofsChecked: len(proofs),
	})
	if err != nil {
		fail("encoding result: %v", err)
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// consistent proves, with tlog.ProveTree over authenticated hashes and
// tlog.CheckTree, that the tree cp extends the tree (size, root).
func consistent(cp checkpoint, hr tlog.HashReader, size int64, root tlog.Hash) error {
	switch {
	case size < 0:
		return errors.New("negative size")
	case size > cp.size:
		return fmt.Errorf("it is larger than the checkpoint's tree (size %d)", cp.size)
	case size == 0:
		if root != emptyRoot {
			return fmt.Errorf("size 0 but root is not the empty-tree hash %v", emptyRoot)
		}
		return nil
	}
	p, err := tlog.ProveTree(cp.size, size, hr)
	if err != nil {
		return fmt.Errorf("building consistency proof from tiles: %v", err)
	}
	if err := tlog.CheckTree(p, cp.size, cp.root, size, root); err != nil {
		return fmt.Errorf("not consistent with checkpoint (size %d, root %v): %v", cp.size, cp.root, err)
	}
	return nil
}

// ---- checkpoints (c2sp.org/signed-note + c2sp.org/tlog-checkpoint) ----

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func openCheckpoint(what string, raw []byte, verifiers note.Verifiers) checkpoint {
	n, err := note.Open(raw, verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			fail("%s: no signature by the log's key (%v)", what, err)
		case errors.As(err, &invalid):
			fail("%s: bad signature: %v", what, err)
		default:
			fail("%s: not a valid signed note: %v", what, err)
		}
	}
	cp, err := parseCheckpointBody(n.Text)
	if err != nil {
		fail("%s: %v", what, err)
	}
	return cp
}

// parseCheckpointBody parses a c2sp.org/tlog-checkpoint body (glue: x/mod
// 0.7.0's tlog.ParseTree only knows the "go.sum database tree" format).
func parseCheckpointBody(text string) (checkpoint, error) {
	var cp checkpoint
	lines := strings.Split(text, "\n")
	// note.Open guarantees text ends in "\n", so the last element is "".
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return cp, fmt.Errorf("checkpoint body has fewer than 3 lines: %q", text)
	}
	if lines[0] == "" {
		return cp, errors.New("checkpoint origin line is empty")
	}
	cp.origin = lines[0]
	size, err := parseDecimal(lines[1])
	if err != nil {
		return cp, fmt.Errorf("checkpoint size %q: %v", lines[1], err)
	}
	cp.size = size
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return cp, fmt.Errorf("checkpoint root %q: %v", lines[2], err)
	}
	cp.root = root
	// lines[3:len-1] are extension lines: ignored.
	return cp, nil
}

// parseDecimal parses a non-negative ASCII decimal with no leading zeros.
func parseDecimal(s string) (int64, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a decimal number without leading zeros")
	}
	return strconv.ParseInt(s, 10, 64)
}

// ---- offline proofs (c2sp.org/tlog-proof@v1) ----

func checkProof(file string, cp checkpoint, hr tlog.HashReader, verifiers note.Verifiers) {
	raw, err := ioutil.ReadFile(file)
	if err != nil {
		fail("proof %s: %v", file, err)
	}
	header := "c2sp.org/tlog-proof@v1\n"
	if !bytes.HasPrefix(raw, []byte(header)) {
		fail("proof %s: does not start with %q", file, header)
	}
	rest := string(raw[len(header):])
	next := func() string {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			fail("proof %s: truncated (no blank line before the checkpoint)", file)
		}
		line := rest[:i]
		rest = rest[i+1:]
		return line
	}
	line := next()
	var entry []byte
	haveEntry := false
	if strings.HasPrefix(line, "extra ") {
		entry, err = base64.StdEncoding.DecodeString(line[len("extra "):])
		if err != nil {
			fail("proof %s: bad extra line: %v", file, err)
		}
		haveEntry = true
		line = next()
	}
	if !strings.HasPrefix(line, "index ") {
		fail("proof %s: expected \"index <n>\", got %q", file, line)
	}
	index, err := parseDecimal(line[len("index "):])
	if err != nil {
		fail("proof %s: index %q: %v", file, line, err)
	}
	var path tlog.RecordProof
	for {
		line = next()
		if line == "" {
			break
		}
		h, err := tlog.ParseHash(line)
		if err != nil {
			fail("proof %s: inclusion hash %q: %v", file, line, err)
		}
		path = append(path, h)
	}
	if !haveEntry {
		fail("proof %s: no extra line, so no entry to check", file)
	}
	pcp := openCheckpoint("proof "+file+": checkpoint", []byte(rest), verifiers)
	if pcp.origin != cp.origin {
		fail("proof %s: checkpoint origin %q != log origin %q", file, pcp.origin, cp.origin)
	}
	if index >= pcp.size {
		fail("proof %s: index %d not below the proof's tree size %d", file, index, pcp.size)
	}
	if err := tlog.CheckRecord(path, pcp.size, pcp.root, index, tlog.RecordHash(entry)); err != nil {
		fail("proof %s: entry %d not included in tree (size %d, root %v): %v", file, index, pcp.size, pcp.root, err)
	}
	// The proof's tree head must be a prefix of the log's current one.
	if err := consistent(cp, hr, pcp.size, pcp.root); err != nil {
		fail("proof %s: its checkpoint (size %d, root %v): %v", file, pcp.size, pcp.root, err)
	}
}

// ---- HTTP and C2SP tile paths ----

type fetcher struct {
	base   string
	client *http.Client
	cache  map[string][]byte // only 200 answers; their bytes are authenticated on every use
	stderr io.Writer
}

// get fetches BASE/path, refusing bodies over max bytes.
func (f *fetcher) get(path string, max int64) ([]byte, int, error) {
	if b, ok := f.cache[path]; ok {
		return b, http.StatusOK, nil
	}
	resp, err := f.client.Get(f.base + "/" + path)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(ioutil.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil, resp.StatusCode, nil
	}
	b, err := ioutil.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %v", path, err)
	}
	if int64(len(b)) > max {
		return nil, 0, fmt.Errorf("GET %s: body over %d bytes", path, max)
	}
	f.cache[path] = b
	return b, http.StatusOK, nil
}

// getTile fetches a tile or entry bundle of width w; if a partial one is gone
// (404), it falls back to the full one, as c2sp.org/tlog-tiles allows.
// It returns the bytes and whether they are the full tile.
func (f *fetcher) getTile(t tlog.Tile, max int64) ([]byte, bool) {
	path := c2spPath(t)
	b, status, err := f.get(path, max)
	if err != nil {
		fail("%v", err)
	}
	if status == http.StatusOK {
		return b, t.W == tileWidth
	}
	if status == http.StatusNotFound && t.W < tileWidth {
		full := t
		full.W = tileWidth
		fb, fstatus, err := f.get(c2spPath(full), max)
		if err != nil {
			fail("%v", err)
		}
		if fstatus == http.StatusOK {
			fmt.Fprintf(f.stderr, "note: %s gone (404); used %s\n", path, c2spPath(full))
			return fb, true
		}
		fail("GET %s: HTTP 404, and the full tile %s: HTTP %d", path, c2spPath(full), fstatus)
	}
	fail("GET %s: HTTP %d", path, status)
	return nil, false
}

// c2spPath turns Go's tile path tile/8/L/NNN[.p/W] (or tile/8/data/...) into
// C2SP's tile/L/NNN[.p/W] (or tile/entries/...), keeping Go's encoding of N.
func c2spPath(t tlog.Tile) string {
	if t.H != tileHeight {
		panic(fmt.Sprintf("tile height %d", t.H))
	}
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if strings.HasPrefix(p, "data/") {
		return "tile/entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

// tileReader is a tlog.TileReader over HTTP. It does no checking of its own:
// tlog.TileHashReader authenticates what it returns.
type tileReader struct{ f *fetcher }

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, full := r.f.getTile(t, tileWidth*tlog.HashSize)
		want := t.W * tlog.HashSize
		if full {
			if len(b) != tileWidth*tlog.HashSize {
				return nil, fmt.Errorf("tile %s: %d bytes, want %d", c2spPath(t), len(b), tileWidth*tlog.HashSize)
			}
			b = b[:want]
		}
		if len(b) != want {
			return nil, fmt.Errorf("tile %s: %d bytes, want %d", c2spPath(t), len(b), want)
		}
		data[i] = b
	}
	return data, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// bundle fetches entry bundle n of width w and splits it into entries.
func (f *fetcher) bundle(n int64, w int) [][]byte {
	t := tlog.Tile{H: tileHeight, L: -1, N: n, W: w}
	b, full := f.getTile(t, tileWidth*(2+0xffff))
	var entries [][]byte
	for rest := b; len(rest) > 0; {
		if len(rest) < 2 {
			fail("entry bundle %s: truncated length prefix after %d entries", c2spPath(t), len(entries))
		}
		l := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+l {
			fail("entry bundle %s: entry %d truncated (%d of %d bytes)", c2spPath(t), len(entries), len(rest)-2, l)
		}
		entries = append(entries, rest[2:2+l])
		rest = rest[2+l:]
	}
	want := w
	if full {
		want = tileWidth
	}
	if len(entries) != want {
		fail("entry bundle %s: %d entries, want %d", c2spPath(t), len(entries), want)
	}
	return entries[:w]
}
