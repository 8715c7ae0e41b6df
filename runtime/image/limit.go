package image

import (
	"fmt"
	"io"
)

// DefaultMaxImageSize bounds the uncompressed size of one image (its
// flattened tar stream). 8 GiB is well above real images (CUDA and other
// large base images run 3–6 GiB unpacked) yet stops a decompression bomb
// long before it fills a typical node disk; gzip reaches about 1000:1, so a
// 20 MB layer can otherwise become 20 GB.
const DefaultMaxImageSize int64 = 8 << 30

// capReader fails a read once more than max bytes have passed through, so an
// unpack stops at the limit instead of after the disk is full.
type capReader struct {
	r    io.Reader
	max  int64
	read int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.read > c.max {
		return 0, c.tooLarge()
	}
	// Never hand out more than one byte past the limit: that byte is
	// enough to know the image is too large.
	if room := c.max - c.read + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read > c.max {
		return n, c.tooLarge()
	}
	return n, err
}

func (c *capReader) tooLarge() error {
	return fmt.Errorf("%w: it unpacks to more than %d bytes (the node's --max-image-size)", ErrImageTooLarge, c.max)
}
