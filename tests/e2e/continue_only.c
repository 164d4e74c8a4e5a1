/*
 * The floor of the system-call path, for its benchmark (crates/cli/benches/syscall_path.rs): the
 * least a seccomp user-notification supervisor can do. It runs PROGRAM under a filter that stops
 * the file calls mirrord intercepts, and one thread answers every stopped call
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE without reading anything from the program (with the kernel's
 * synchronous wake-up where there is one, as mirrord asks for). What mirrord adds over this is
 * its own work: reading the path and deciding on it.
 *
 * Build: gcc -O2 -pthread -o continue_only continue_only.c
 * Usage: continue_only PROGRAM [ARGUMENT...]   (exits with PROGRAM's status)
 *        CONTINUE_ONLY_CPU=N continue_only ...  the same with PROGRAM and the supervisor pinned
 *        to CPU N (pinning, a lever a real supervisor cannot pull without confining the program)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#define SYNC_WAKE_UP 1UL

/* The same calls as FILE_CALLS in supervisor/src/filter.rs. */
static const int file_calls[] = {
    __NR_open,    __NR_creat,     __NR_openat,     __NR_openat2,  __NR_stat,
    __NR_lstat,   __NR_newfstatat, __NR_statx,     __NR_access,   __NR_faccessat,
    __NR_faccessat2, __NR_readlink, __NR_readlinkat,
};
#define CALLS (int)(sizeof file_calls / sizeof file_calls[0])

static int listener;

static void *serve(void *unused) {
    (void)unused;
    struct seccomp_notif call;
    struct seccomp_notif_resp answer;
    for (;;) {
        memset(&call, 0, sizeof call);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &call) != 0) {
            if (errno == EINTR || errno == ENOENT) continue;
            return NULL;
        }
        memset(&answer, 0, sizeof answer);
        answer.id = call.id;
        answer.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &answer);
    }
}

/* One byte of data and room for one descriptor: the message that carries the listener. */
struct fd_message {
    char byte;
    struct iovec data;
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr header;
};

static void fd_message_init(struct fd_message *message) {
    memset(message, 0, sizeof *message);
    message->data.iov_base = &message->byte;
    message->data.iov_len = 1;
    message->header.msg_iov = &message->data;
    message->header.msg_iovlen = 1;
    message->header.msg_control = message->control;
    message->header.msg_controllen = sizeof message->control;
}

static void send_fd(int socket, int fd) {
    struct fd_message message;
    fd_message_init(&message);
    struct cmsghdr *header = CMSG_FIRSTHDR(&message.header);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof fd);
    if (sendmsg(socket, &message.header, 0) != 1) _exit(126);
}

static int receive_fd(int socket) {
    struct fd_message message;
    fd_message_init(&message);
    if (recvmsg(socket, &message.header, 0) != 1) return -1;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message.header);
    if (header == NULL || header->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof fd);
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM [ARGUMENT...]\n", argv[0]);
        return 2;
    }
    const char *cpu = getenv("CONTINUE_ONLY_CPU");
    if (cpu != NULL) {
        cpu_set_t only;
        CPU_ZERO(&only);
        CPU_SET(atoi(cpu), &only);
        if (sched_setaffinity(0, sizeof only, &only) != 0) {
            perror("sched_setaffinity");
            return 1;
        }
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        perror("socketpair");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        /* arch check, load nr, one comparison per call, ALLOW, USER_NOTIF */
        struct sock_filter program[4 + CALLS + 2];
        int at = 0;
        program[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                     offsetof(struct seccomp_data, arch));
        program[at++] =
            (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
        program[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        program[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                     offsetof(struct seccomp_data, nr));
        for (int index = 0; index < CALLS; index++) {
            program[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                         file_calls[index], CALLS - index, 0);
        }
        program[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        program[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
        struct sock_fprog filter = {(unsigned short)at, program};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(126);
        int fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                         &filter);
        if (fd < 0) {
            perror("seccomp");
            _exit(126);
        }
        send_fd(pair[0], fd);
        close(fd);
        char go;
        if (read(pair[0], &go, 1) != 1) _exit(126);
        execvp(argv[1], argv + 1);
        perror("execvp");
        _exit(127);
    }
    listener = receive_fd(pair[1]);
    if (listener < 0) {
        fprintf(stderr, "no listener from the child\n");
        return 1;
    }
    /* Linux 6.6+; older kernels wake the supervisor the ordinary way. */
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SYNC_WAKE_UP);
    pthread_t thread;
    if (pthread_create(&thread, NULL, serve, NULL) != 0) {
        fprintf(stderr, "no supervisor thread\n");
        return 1;
    }
    if (write(pair[1], "g", 1) != 1) return 1;
    int status;
    if (waitpid(child, &status, 0) < 0) {
        perror("waitpid");
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
