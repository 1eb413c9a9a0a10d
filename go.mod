module github.com/tutti-audio/tutti

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/Shopify/toxiproxy/v2 v2.12.0
	github.com/dhowden/tag v0.0.0-20240417053706-3d75831295e8
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/gopxl/beep/v2 v2.1.1
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/mewkiz/flac v1.0.12
	github.com/mochi-mqtt/server/v2 v2.7.9
	github.com/pion/opus v0.1.0
	github.com/rs/zerolog v1.33.0
	github.com/schollz/progressbar/v3 v3.19.1
	go.etcd.io/bbolt v1.3.5
	golang.org/x/crypto v0.58.0
	golang.org/x/sync v0.24.0
	gonum.org/v1/plot v0.17.0
)

require github.com/fsnotify/fsnotify v1.10.1 // indirect

require (
	codeberg.org/go-fonts/liberation v0.5.0 // indirect
	codeberg.org/go-latex/latex v0.2.0 // indirect
	codeberg.org/go-pdf/fpdf v0.11.1 // indirect
	git.sr.ht/~sbinet/gg v0.7.0 // indirect
	github.com/ajstarks/svgo v0.0.0-20211024235047-1546f124cd8b // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	github.com/gorilla/mux v1.8.1 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/hajimehoshi/go-mp3 v0.3.4
	github.com/icza/bitio v1.1.0 // indirect
	github.com/jfreymuth/oggvorbis v1.0.5 // indirect
	github.com/jfreymuth/vorbis v1.0.2 // indirect
	github.com/klauspost/compress v1.17.11 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.22 // indirect
	github.com/mewkiz/pkg v0.0.0-20230226050401-4010bf0fec14 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/prometheus/client_golang v1.21.1 // indirect
	github.com/prometheus/client_model v0.6.1 // indirect
	github.com/prometheus/common v0.62.0 // indirect
	github.com/prometheus/procfs v0.15.1 // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/rs/xid v1.5.0 // indirect
	golang.org/x/image v0.30.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/term v0.47.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/protobuf v1.36.1 // indirect
	gopkg.in/tomb.v1 v1.0.0-20141024135613-dd632973f1e7 // indirect
)

// v2.7.9 with four changes, tested by its own tests (third_party/mochi-mqtt-server/TUTTI.md):
// a data race fixed (retained messages read while written); a clean
// session's end ordered with a takeover of its client id; a SUBSCRIBE no
// longer refused for sharing a packet identifier with a server delivery; a
// topic's retained publishes delivered to every subscriber in one order.
// Without its unused storage backends and config package.
replace github.com/mochi-mqtt/server/v2 => ./third_party/mochi-mqtt-server

// v0.3.4 (archived upstream) with a table-driven requantisation, half of
// the synthesis and IMDCT sums mirrored, those sums advancing together
// (SSE on amd64), zero subbands skipped, Huffman words looked up by table,
// and no buffer allocated per frame: output unchanged, see
// third_party/go-mp3/TUTTI.md.
replace github.com/hajimehoshi/go-mp3 => ./third_party/go-mp3

// v1.0.12 with a bit reader that caches 64 bits and reads unary codes by
// leading zeros, tight Rice and prediction loops, CRCs computed in place and
// no allocation per frame, output unchanged: see third_party/flac/TUTTI.md.
replace github.com/mewkiz/flac => ./third_party/flac
