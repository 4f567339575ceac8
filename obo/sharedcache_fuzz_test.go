package obo

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// FuzzSharedCacheEntry: entries of the shared cache are outside input (anyone who can write to
// the store can put anything there). Decoding a value never panics, never accepts a value that
// was not sealed with one of the App's keys under its name, and the plaintext parser accepts
// only what the encoder writes (a parsed entry seals and opens to the same token).
func FuzzSharedCacheEntry(f *testing.F) {
	sc := newTestShared(f, newMemStore(f), testKey(1), testKey(2))
	tok := azcore.AccessToken{Token: "eyJ0eXAi.eyJhdWQi.c2ln", ExpiresOn: time.UnixMilli(1_900_000_000_000), RefreshOn: time.UnixMilli(1_899_999_000_000)}
	good := sc.seal("fuzz-name", tok)
	pinned, _ := hex.DecodeString(pinnedValue)
	pt := []byte{0, 0, 1, 0xba, 0x7d, 0xef, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 'B', 'e', 'a', 'r', 'e', 'r', 0, 0, 0, 1, 'x'}
	f.Add(good, pt)
	f.Add(pinned, []byte{})
	f.Add([]byte{1, 0}, []byte{0xff})
	f.Add(append([]byte{1, good[1]}, make([]byte, 40)...), pt[:20])
	f.Fuzz(func(t *testing.T, value, plaintext []byte) {
		got, err := sc.open("fuzz-name", value)
		if err == nil && (len(value) < 2+nonceSize+16 || got.Token == "") {
			t.Fatalf("an invalid value opened: %+v", got)
		}
		if _, err := sc.open("another-name", value); err == nil && string(value) == string(good) {
			t.Fatal("a value opened under another name")
		}
		p, err := parseSharedToken(plaintext)
		if err != nil {
			return
		}
		if p.Token == "" || p.ExpiresOn.UnixMilli() <= 0 || (!p.RefreshOn.IsZero() && p.RefreshOn.After(p.ExpiresOn)) {
			t.Fatalf("parsed an unusable token: %+v", p)
		}
		back, err := sc.open("n", sc.seal("n", p))
		if err != nil || back.Token != p.Token || !back.ExpiresOn.Equal(p.ExpiresOn) || !back.RefreshOn.Equal(p.RefreshOn) {
			t.Fatalf("a parsed entry does not round-trip: %+v -> %+v, %v", p, back, err)
		}
	})
}
