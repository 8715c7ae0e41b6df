package image

import "errors"

// ErrImagePull is wrapped by every error Pull returns; its text is the reason
// the kubelet reports, as Kubernetes does.
var ErrImagePull = errors.New("ErrImagePull")

// errUnsafePath marks an archive that names a location above its root; no
// image builder produces one, so it is treated as hostile and the unpack fails.
var errUnsafePath = errors.New("path escapes the image root")

// ErrImageTooLarge marks an image whose uncompressed size passes the store's
// limit (a decompression bomb or simply too big for this node).
var ErrImageTooLarge = errors.New("image too large")
