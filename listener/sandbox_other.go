//go:build !amd64 && !arm64

package listener

// No seccomp filter is built for other architectures: Sandbox says so.
const sandboxArch = 0

var allowed = allowedCommon
