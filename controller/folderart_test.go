package controller

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// A folder's cover is found whatever its case, and a symlink named like a
// cover is not followed: covers go to anyone.
func TestFolderPictureFindsCoversButNotSymlinks(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	defer st.Close()
	album := t.TempDir()
	sha := strings.Repeat("cd", 32)
	if _, _, err := st.putFile(musicFile{path: filepath.Join(album, "song.flac"), root: album, size: 1, modNs: 1, sha: sha}, protocol.Song{}, 1); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "private.jpg")
	if err := musicgen.WriteCover(elsewhere, 3); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(album, "cover.jpg")); err != nil {
		t.Fatal(err)
	}
	if pic, _, _ := folderPicture(st, sha); pic != nil {
		t.Fatal("a symlinked cover was served")
	}
	front := filepath.Join(album, "FRONT.jpg")
	if err := musicgen.WriteCover(front, 4); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(front)
	pic, contentType, etag := folderPicture(st, sha)
	if !bytes.Equal(pic, want) || contentType != "image/jpeg" || !strings.Contains(etag, sha) {
		t.Errorf("front cover: %d bytes of %q, etag %s", len(pic), contentType, etag)
	}
}
