// Command main is the Go side of medledger-chain's interop test
// (tests/go_interop.rs). It uses golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog, an implementation we did not write, to check
// what the Rust crate produces and to produce what the Rust crate checks.
//
//	verify <vkey> <note file>            note.Open; prints the text
//	sign <skey> <text file>              note.Sign; prints the signed note
//	cosig-verify <vkey> <note file>      checks the cosignature/v1 (0x04) line of vkey
//	cosign <seed hex> <name> <time> <body file>   prints a cosignature/v1 line
//	tlog <file>                          checks roots and proofs (format below)
//
// The tlog file has a first line "leaves N" (leaf i is the bytes "leaf i"),
// then lines "root n b64", "incl i n b64...", "cons m n b64...". Every root
// must equal tlog.TreeHash, every proof must pass CheckRecord / CheckTree and
// equal ProveRecord / ProveTree. It prints "ok <lines checked>".
//
// Run offline with the Debian packages golang-go and golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run main.go ...
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		die("read %s: %v", path, err)
	}
	return b
}

type hashes []tlog.Hash

func (h hashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(h)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = h[x]
	}
	return out, nil
}

func parseHashes(fields []string) []tlog.Hash {
	var out []tlog.Hash
	for _, f := range fields {
		h, err := tlog.ParseHash(f)
		if err != nil {
			die("bad hash %q: %v", f, err)
		}
		out = append(out, h)
	}
	return out
}

func atoi(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		die("bad number %q", s)
	}
	return n
}

func equal(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkTlog(path string) {
	sc := bufio.NewScanner(bytes.NewReader(read(path)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var stored hashes
	n, checked := int64(0), 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "leaves":
			n = atoi(f[1])
			for i := int64(0); i < n; i++ {
				hs, err := tlog.StoredHashes(i, []byte(fmt.Sprintf("leaf %d", i)), stored)
				if err != nil {
					die("StoredHashes: %v", err)
				}
				stored = append(stored, hs...)
			}
		case "root":
			size := atoi(f[1])
			want, err := tlog.TreeHash(size, stored)
			if err != nil {
				die("TreeHash(%d): %v", size, err)
			}
			if got := parseHashes(f[2:3])[0]; got != want {
				die("root %d: rust %v go %v", size, got, want)
			}
		case "incl":
			i, size := atoi(f[1]), atoi(f[2])
			p := parseHashes(f[3:])
			th, _ := tlog.TreeHash(size, stored)
			leaf := tlog.RecordHash([]byte(fmt.Sprintf("leaf %d", i)))
			if err := tlog.CheckRecord(p, size, th, i, leaf); err != nil {
				die("CheckRecord(%d, %d): %v", i, size, err)
			}
			gp, err := tlog.ProveRecord(size, i, stored)
			if err != nil || !equal(gp, p) {
				die("ProveRecord(%d, %d) differs: %v", size, i, err)
			}
		case "cons":
			m, size := atoi(f[1]), atoi(f[2])
			p := parseHashes(f[3:])
			th, _ := tlog.TreeHash(size, stored)
			h, _ := tlog.TreeHash(m, stored)
			if err := tlog.CheckTree(p, size, th, m, h); err != nil {
				die("CheckTree(%d, %d): %v", m, size, err)
			}
			gp, err := tlog.ProveTree(size, m, stored)
			if err != nil || !equal(gp, p) {
				die("ProveTree(%d, %d) differs: %v", size, m, err)
			}
		default:
			die("unknown line %q", sc.Text())
		}
		checked++
	}
	fmt.Printf("ok %d\n", checked)
}

// cosigVerify checks a tlog-cosignature cosignature/v1 line with only the
// standard library, from the spec's text (the vkey's type byte is 0x04).
func cosigVerify(vkey string, msg []byte) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		die("bad vkey")
	}
	name := parts[0]
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		die("bad vkey key")
	}
	pub := ed25519.PublicKey(raw[1:])
	sum := sha256.Sum256(append([]byte(name+"\n\x04"), pub...))
	if hex.EncodeToString(sum[:4]) != parts[1] {
		die("key ID mismatch")
	}
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		die("no signatures")
	}
	text, sigs := msg[:split+1], string(msg[split+2:])
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		f := strings.SplitN(strings.TrimPrefix(line, "\u2014 "), " ", 2)
		if len(f) != 2 || f[0] != name {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil || len(sig) != 4+8+64 || !bytes.Equal(sig[:4], sum[:4]) {
			continue
		}
		ts := binary.BigEndian.Uint64(sig[4:12])
		m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", ts)), text...)
		if !ed25519.Verify(pub, m, sig[12:]) {
			die("cosignature does not verify")
		}
		fmt.Printf("ok %d\n", ts)
		return
	}
	die("no cosignature from %s", name)
}

func cosign(seedHex, name, ts string, body []byte) {
	seed, err := hex.DecodeString(seedHex)
	if err != nil || len(seed) != 32 {
		die("bad seed")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(append([]byte(name+"\n\x04"), pub...))
	t := uint64(atoi(ts))
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), body...)
	sig := append([]byte{}, sum[:4]...)
	sig = binary.BigEndian.AppendUint64(sig, t)
	sig = append(sig, ed25519.Sign(priv, m)...)
	fmt.Printf("\u2014 %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
}

func main() {
	a := os.Args[1:]
	if len(a) == 0 {
		die("usage: see the comment at the top of main.go")
	}
	switch {
	case a[0] == "verify" && len(a) == 3:
		v, err := note.NewVerifier(a[1])
		if err != nil {
			die("NewVerifier: %v", err)
		}
		n, err := note.Open(read(a[2]), note.VerifierList(v))
		if err != nil {
			die("Open: %v", err)
		}
		fmt.Print(n.Text)
	case a[0] == "sign" && len(a) == 3:
		s, err := note.NewSigner(a[1])
		if err != nil {
			die("NewSigner: %v", err)
		}
		out, err := note.Sign(&note.Note{Text: string(read(a[2]))}, s)
		if err != nil {
			die("Sign: %v", err)
		}
		os.Stdout.Write(out)
	case a[0] == "cosig-verify" && len(a) == 3:
		cosigVerify(a[1], read(a[2]))
	case a[0] == "cosign" && len(a) == 5:
		cosign(a[1], a[2], a[3], read(a[4]))
	case a[0] == "tlog" && len(a) == 2:
		checkTlog(a[1])
	default:
		die("bad arguments %q", a)
	}
}
