package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxDepth bounds nesting: MiniKu's objects are a few levels deep, and the
// msgpack decoder recurses once per level, so a megabyte of nested arrays
// would otherwise exhaust the stack (a fatal error, not a panic).
const maxDepth = 32

var errMalformed = errors.New("malformed msgpack")

// checkShape walks one msgpack value without decoding it and refuses one
// that declares more elements or bytes than the message holds, or nests too
// deep. The decoder allocates what a header declares before reading: a
// 16-byte message declaring 2^31 structs would otherwise ask for 64 GiB and
// kill the process (Go's out-of-memory is fatal). After this check every
// allocation is bounded by the message's own size.
func checkShape(data []byte) error {
	pos := 0
	need := func(n uint64) error {
		if n > uint64(len(data)-pos) {
			return fmt.Errorf("%w: %d bytes declared at offset %d, %d left", errMalformed, n, pos, len(data)-pos)
		}
		return nil
	}
	uint := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		b := data[pos : pos+size]
		pos += size
		switch size {
		case 1:
			return uint64(b[0]), nil
		case 2:
			return uint64(binary.BigEndian.Uint16(b)), nil
		default:
			return uint64(binary.BigEndian.Uint32(b)), nil
		}
	}
	// pending[i] counts the values still to read in the i-th open container.
	pending := []uint64{1}
	for len(pending) > 0 {
		if pending[len(pending)-1] == 0 {
			pending = pending[:len(pending)-1]
			continue
		}
		pending[len(pending)-1]--
		if err := need(1); err != nil {
			return err
		}
		c := data[pos]
		pos++
		var (
			skip  uint64 // bytes of payload to skip
			items uint64 // values inside a container
			isCon bool
			err   error
		)
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			items, isCon = 2*uint64(c&0x0f), true
		case c >= 0x90 && c <= 0x9f:
			items, isCon = uint64(c&0x0f), true
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			skip, err = uint(1)
		case c == 0xc5 || c == 0xda:
			skip, err = uint(2)
		case c == 0xc6 || c == 0xdb:
			skip, err = uint(4)
		case c == 0xc7, c == 0xc8, c == 0xc9: // ext: length, type, data
			skip, err = uint(1 << (c - 0xc7))
			skip++
		case c == 0xca || c == 0xce || c == 0xd2:
			skip = 4
		case c == 0xcb || c == 0xcf || c == 0xd3:
			skip = 8
		case c == 0xcc || c == 0xd0:
			skip = 1
		case c == 0xcd || c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8: // fixext: type, then 1, 2, 4, 8 or 16 bytes
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			items, err = uint(2)
			isCon = true
		case c == 0xdd:
			items, err = uint(4)
			isCon = true
		case c == 0xde:
			items, err = uint(2)
			items, isCon = 2*items, true
		case c == 0xdf:
			items, err = uint(4)
			items, isCon = 2*items, true
		default: // 0xc1, never used
			return fmt.Errorf("%w: invalid code %#x at offset %d", errMalformed, c, pos-1)
		}
		if err != nil {
			return err
		}
		if isCon {
			// Every value takes at least one byte.
			if err := need(items); err != nil {
				return err
			}
			if len(pending) >= maxDepth {
				return fmt.Errorf("%w: nested deeper than %d", errMalformed, maxDepth)
			}
			pending = append(pending, items)
			continue
		}
		if err := need(skip); err != nil {
			return err
		}
		pos += int(skip)
	}
	return nil
}
