package main

import (
	"os/exec"
	"strings"
	"testing"
)

// benchOnly are modules only the benchmarks need; the product binary, which
// every speaker and the Pi image carry, must not link them.
var benchOnly = []string{"gonum.org/v1/plot", "github.com/Shopify/toxiproxy", "codeberg.org/go-latex", "codeberg.org/go-pdf"}

func TestProductLeavesBenchmarksOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, mod := range benchOnly {
			if strings.HasPrefix(pkg, mod) {
				t.Errorf("the product binary links %s (benchmark-only)", pkg)
			}
		}
	}
	out, err = exec.Command("go", "list", "-deps", "-tags", "bench", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -tags bench: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "gonum.org/v1/plot") {
		t.Errorf("tutti-bench (-tags bench) does not link the plotting the benchmarks use: is the tag still in use?")
	}
}
