package emulator_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEExampleIsThisTest keeps the test of the README's "Test your service offline" section
// the same as readme_test.go, which runs with the other tests.
func TestREADMEExampleIsThisTest(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Test your service offline\n")
	if !ok {
		t.Fatal(`README.md has no section "Test your service offline"`)
	}
	_, code, ok := strings.Cut(section, "\n```go\n")
	if ok {
		code, _, ok = strings.Cut(code, "\n```\n")
	}
	if !ok {
		t.Fatal("the section has no Go code block")
	}
	test, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(string(test), "package emulator_test", "package myservice_test", 1)
	if code+"\n" != want {
		t.Errorf("the README's test differs from readme_test.go: copy readme_test.go (package myservice_test) into the README")
	}
}
