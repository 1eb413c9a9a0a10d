//go:build !bench

package cli

// benchCommands is empty in the product binary: the benchmarks and what
// only they need (plotting, the Wi-Fi proxy) are in tutti-bench, built by
// make build with -tags bench, so a speaker carries only the product.
func benchCommands() []command { return nil }
