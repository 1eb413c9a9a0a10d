package controller

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// coverNames are the pictures (in lower case) beside a song, in the order looked for, that
// are its cover when it embeds none: the names music players and rippers
// write.
var coverNames = []string{"cover.jpg", "folder.jpg", "front.jpg", "cover.png", "folder.png", "front.png"}

// folderPicture returns the cover picture in the folder of one of song
// sha's files in the music folders, its type and an ETag that changes with
// the picture's file; nil when there is none a browser shows. It reads at
// most maxArtScan bytes.
func folderPicture(st *store, sha string) (picture []byte, contentType, etag string) {
	files, err := st.songFiles(sha)
	if err != nil {
		return nil, "", ""
	}
	for _, f := range files {
		dir := filepath.Dir(f.path)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		names := map[string]string{} // lower case: as written (Folder.jpg from Windows rips)
		for _, e := range entries {
			names[strings.ToLower(e.Name())] = e.Name()
		}
		for _, name := range coverNames {
			if names[name] == "" {
				continue
			}
			picture, modNs := readPicture(filepath.Join(dir, names[name]))
			if picture == nil {
				continue
			}
			contentType = http.DetectContentType(picture)
			if !artTypes[contentType] {
				continue
			}
			return picture, contentType, `"` + sha + `-folder-` + strconv.FormatInt(modNs, 36) + `"`
		}
	}
	return nil, "", ""
}

// readPicture reads the regular file at path if it is at most maxArtScan
// bytes, with its modification time. A symlink is not followed: covers are
// served to anyone, and a link could reach a picture outside the folders.
func readPicture(path string) ([]byte, int64) {
	if info, err := os.Lstat(path); err != nil || !info.Mode().IsRegular() {
		return nil, 0
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() || info.Size() > maxArtScan || info.Size() == 0 {
		return nil, 0
	}
	b, err := io.ReadAll(io.LimitReader(f, maxArtScan))
	if err != nil {
		return nil, 0
	}
	return b, info.ModTime().UnixNano()
}
