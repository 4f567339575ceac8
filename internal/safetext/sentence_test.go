package safetext

import "testing"

func TestSentenceBreak(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Operation get is not allowed on a disabled secret.", " "},
		{"HTTP 401 invalid_client", ". "},
		{"[correlation ID x]", ". "},
		{"Done!", " "},
		{"ends. ", ""},
		{"", ". "},
	} {
		if got := SentenceBreak(tc.in); got != tc.want {
			t.Errorf("SentenceBreak(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
