// Package image pulls OCI and Docker images and unpacks each one, once, into a
// content-addressed cache of read-only root filesystems shared by every
// container of that image.
//
// Layout under the store root (<data-dir>/images):
//
//	<hex>/rootfs       flattened filesystem of the image whose manifest digest is sha256:<hex>
//	<hex>/config.json  the parts of the image config the runtime needs
//	refs/<ref>         last digest pulled for a reference, for pulls while the registry is down
//	.tmp-*             unpacks in progress; renamed to <hex> only when complete
//
// Layers come from untrusted registries, so unpacking goes through os.Root and
// resolves every symlink as if the rootfs were "/": no tar entry can create,
// follow or link to anything outside the rootfs.
package image
