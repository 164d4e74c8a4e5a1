/*
 * A program that installs a seccomp filter of its own (the way sandboxes and browsers do), then
 * reads a file: under mirrord's system-call path the two filters stack.
 *
 * Build: gcc -static -o own_filter own_filter.c
 * Usage: own_filter PATH
 * Prints: filter: installed | filter: ERR <errno>
 *         mkdir: ERR EPERM            (its own filter refuses mkdir)
 *         file PATH: <first line> | file PATH: ERR <errno name>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    struct sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mkdir, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {.len = sizeof program / sizeof program[0], .filter = program};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
        printf("filter: ERR %s\n", strerrorname_np(errno));
        return 1;
    }
    printf("filter: installed\n");
    if (mkdir("/tmp/own-filter-test-dir", 0700) == 0) {
        printf("mkdir: ok\n");
        rmdir("/tmp/own-filter-test-dir");
    } else {
        printf("mkdir: ERR %s\n", strerrorname_np(errno));
    }
    FILE *file = fopen(argv[1], "r");
    if (!file) {
        printf("file %s: ERR %s\n", argv[1], strerrorname_np(errno));
        return 0;
    }
    char line[4096] = "";
    if (fgets(line, sizeof line, file)) {
        line[strcspn(line, "\n")] = 0;
    }
    fclose(file);
    printf("file %s: %s\n", argv[1], line);
    return 0;
}
