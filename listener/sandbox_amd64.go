package listener

import "golang.org/x/sys/unix"

const sandboxArch = unix.AUDIT_ARCH_X86_64

// allowed adds amd64's older calls, which the runtime and x/sys use there.
var allowed = append(allowedCommon, unix.SYS_EPOLL_WAIT, unix.SYS_POLL, unix.SYS_TIME)
