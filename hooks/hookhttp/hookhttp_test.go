package hookhttp

import (
	"bytes"
	"errors"
	"io"
	"runtime"
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

func TestAReleasedBodyIsZeroedAndReadIntoAgain(t *testing.T) {
	long := bytes.Repeat([]byte("secret"), 10_000)
	short := bytes.Repeat([]byte("x"), 1_000)
	first, err := readAll(bytes.NewReader(long), int64(len(long)))
	if err != nil {
		t.Fatal(err)
	}
	Release(first)
	if i := bytes.IndexFunc(first[:cap(first)], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d of a released body is not zero: the next call could read another's request", i)
	}
	// Whichever buffer it gets, a read holds exactly the body sent.
	got, err := readAll(bytes.NewReader(short), int64(len(short)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, short) {
		t.Fatalf("read %q..., want the %d bytes sent", got[:min(len(got), 20)], len(short))
	}

	// Read and released in turn, bodies of one size reuse one buffer: 20 reads allocate less than
	// half of 20 bodies (sync.Pool may drop a buffer at a GC). Under the race detector it drops
	// them on purpose.
	if raceEnabled {
		return
	}
	body := bytes.Repeat([]byte("x"), 57_363)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		b, err := readAll(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatal(err)
		}
		Release(b)
	}
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 10*uint64(len(body)) {
		t.Errorf("20 bodies read and released allocated %d bytes, more than 10 bodies of %d", allocated, len(body))
	}
}
