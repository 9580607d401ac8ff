package listener

import "golang.org/x/sys/unix"

const sandboxArch = unix.AUDIT_ARCH_AARCH64

var allowed = allowedCommon
