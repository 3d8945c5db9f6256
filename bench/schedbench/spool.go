package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
)

// spoolEntrySize is an entry's size in the spool file.
const spoolEntrySize = 32

// spool keeps a child's ledger in a temporary file while the replica runs,
// behind a fixed 64 KiB buffer: a long sampled window's runs (1.8 million
// in a 30-minute soak at 1,000 firings/s) would otherwise grow the heap
// whose flatness the suite measures. The caller serialises add and read.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	err error // the first write error, returned by read
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "schedbench-ledger-")
	if err != nil {
		return nil, err
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// add appends e.
func (s *spool) add(e entry) {
	var b [spoolEntrySize]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(e.Job))
	binary.LittleEndian.PutUint32(b[4:], uint32(e.Replica))
	binary.LittleEndian.PutUint64(b[8:], uint64(e.Slot))
	binary.LittleEndian.PutUint64(b[16:], uint64(e.Fence))
	binary.LittleEndian.PutUint64(b[24:], uint64(e.Start))
	if _, err := s.w.Write(b[:]); err != nil && s.err == nil {
		s.err = err
	}
}

// read flushes the buffer and reads every entry back.
func (s *spool) read() ([]entry, error) {
	if s.err != nil {
		return nil, s.err
	}
	if err := s.w.Flush(); err != nil {
		return nil, err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	info, err := s.f.Stat()
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, info.Size()/spoolEntrySize)
	r := bufio.NewReaderSize(s.f, 64<<10)
	var b [spoolEntrySize]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		out = append(out, entry{
			Job:     int32(binary.LittleEndian.Uint32(b[0:])),
			Replica: int32(binary.LittleEndian.Uint32(b[4:])),
			Slot:    int64(binary.LittleEndian.Uint64(b[8:])),
			Fence:   int64(binary.LittleEndian.Uint64(b[16:])),
			Start:   int64(binary.LittleEndian.Uint64(b[24:])),
		})
	}
	// Reading it back may be done twice; writes after it append.
	if _, err := s.f.Seek(0, io.SeekEnd); err != nil {
		return nil, err
	}
	return out, nil
}

// remove closes and deletes the file.
func (s *spool) remove() {
	_ = s.f.Close()
	_ = os.Remove(s.f.Name())
}
