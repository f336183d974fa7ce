package hookhttp

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadAllReadsTheWholeBodyWhateverItAnnounces(t *testing.T) {
	body := bytes.Repeat([]byte(`{"parent":{}}`), 1000)
	cases := map[string]int64{
		"a body of the announced size":                 int64(len(body)),
		"a body longer than announced":                 10,
		"a body shorter than announced":                int64(len(body)) * 2,
		"a body of unknown size":                       -1,
		"a body announced larger than is preallocated": maxPrealloc + 1,
	}
	for name, size := range cases {
		t.Run(name, func(t *testing.T) {
			// One byte per read: every growth path runs.
			got, err := readAll(iotest.OneByteReader(bytes.NewReader(body)), size)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes, want the %d sent", len(got), len(body))
			}
		})
	}
}

func TestReadAllReturnsTheReadersError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader([]byte("{")), iotest.ErrReader(boom))
	if _, err := readAll(r, 100); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

func TestReadAllAllocatesTheAnnouncedSizeOnce(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 57_363)
	r := bytes.NewReader(nil)
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset(body)
		if _, err := readAll(r, int64(len(body))); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%v allocations per read of an announced body, want 1", allocs)
	}
}
