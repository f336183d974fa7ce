package realnode

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ImageFile is one file of a single-layer image.
type ImageFile struct {
	Path string // inside the image, e.g. "pause"
	Mode int64
	Data []byte
}

// imagePath is the PATH of every image WriteImage writes: a pod's command that names no path
// (redis-server) is looked up in it.
const imagePath = "/usr/local/bin:/usr/bin:/bin"

// WriteImage writes an OCI image archive of one uncompressed layer holding files, named ref (e.g.
// "localhost/x:1"), whose processes run as user (a numeric uid, so that a pod's runAsNonRoot can
// check it), that `ctr images import` accepts: no registry and no image builder are needed.
func WriteImage(out, ref, user string, entrypoint []string, files ...ImageFile) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range files {
		hdr := &tar.Header{Name: f.Path, Mode: f.Mode, Size: int64(len(f.Data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	blobs := map[string][]byte{}
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	layerDigest, layerSize := put(layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": entrypoint, "WorkingDir": "/", "User": user, "Env": []string{"PATH=" + imagePath}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerDigest}},
	})
	if err != nil {
		return err
	}
	configDigest, configSize := put(config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + configDigest, "size": configSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + layerDigest, "size": layerSize}},
	})
	if err != nil {
		return err
	}
	manifestDigest, manifestSize := put(manifest)
	tag := ref[strings.LastIndexByte(ref, ':')+1:]
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + manifestDigest, "size": manifestSize,
			"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
		}},
	})
	if err != nil {
		return err
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	aw := tar.NewWriter(f)
	add := func(name string, b []byte) error {
		if err := aw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := aw.Write(b)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	for d, b := range blobs {
		if err := add("blobs/sha256/"+d, b); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// WriteHostBinaryImage writes an image (as WriteImage) of one of the host's dynamically linked
// programs, at /usr/bin/<as>, with every shared library it loads (as ldd lists them, the dynamic
// loader included) at their host paths: Debian's own build of a server, run in a pod, without
// a registry or an image builder. as is the name the program is run by (Debian's redis-server is
// a link to redis-check-rdb, which behaves by the name it is called).
func WriteHostBinaryImage(out, ref, user, binary, as string) error {
	real, err := filepath.EvalSymlinks(binary)
	if err != nil {
		return err
	}
	ldd, err := exec.Command("ldd", real).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", real, err)
	}
	data, err := os.ReadFile(real)
	if err != nil {
		return err
	}
	files := []ImageFile{{Path: "usr/bin/" + as, Mode: 0o755, Data: data}}
	for _, line := range strings.Split(string(ldd), "\n") {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
		fields := strings.Fields(line)
		var lib string
		switch {
		case len(fields) >= 3 && fields[1] == "=>":
			lib = fields[2]
		case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			lib = fields[0]
		default:
			continue
		}
		b, err := os.ReadFile(lib)
		if err != nil {
			return err
		}
		files = append(files, ImageFile{Path: strings.TrimPrefix(lib, "/"), Mode: 0o755, Data: b})
	}
	return WriteImage(out, ref, user, nil, files...)
}
