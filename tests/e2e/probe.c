/*
 * What a C program (plain libc calls) sees: one line per check, in the format the e2e tests parse.
 *
 * Build: cc -O1 -pthread -o probe probe.c
 * Usage: probe CHECK...          run the checks in this process
 *        probe fork CHECK...     run them in a child made with fork(2)
 *
 *   file:PATH          file PATH: <first line> | file PATH: ERR <errno name>      (fopen, fgets)
 *   env:NAME           env NAME: <value> | env NAME: MISSING                      (getenv)
 *   dns:NAME           dns NAME: <first IPv4 address> | dns NAME: ERR <reason>   (getaddrinfo)
 *   tcp:HOST:PORT      tcp HOST:PORT: <echoed text> | ERR <reason>   (blocking connect, send, recv)
 *   udp:HOST:PORT      udp HOST:PORT: <echoed text> | ERR <reason>   (connected UDP: connect, send, recv)
 *   udpto:IP:PORT      udpto IP:PORT: <echoed text> | ERR <reason>   (unconnected UDP: sendto, recvfrom)
 *   udpmsg:IP:PORT     the same, sent with sendmsg (msg_name)
 *   udpmsgctl:IP:PORT  the same, sent with sendmsg (msg_name and an IP_TOS control message)
 *   udpmmsg:IP:PORT    the same, sent twice with one sendmmsg (both must go)
 *   udpfrom:IP:PORT    udpfrom IP:PORT: <echoed text> from <source IP:PORT>   (recvfrom asks for the source)
 *   udprecvmsg:IP:PORT udprecvmsg IP:PORT: <echoed text> from <source IP:PORT> with|without pktinfo
 *                      (recvmsg with msg_name, the text scattered over two buffers, IP_PKTINFO on)
 *   udprecvmmsg:IP:PORT udprecvmmsg IP:PORT: <echoed text> from <source IP:PORT> (recvmmsg, two slots)
 *   write:PATH=TEXT    write PATH: ok | write PATH: ERR <errno name>             (fopen "w")
 *   hostname           hostname: <name>                                          (gethostname)
 *
 * Every network operation gives up after 2 seconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_SECONDS 2
static const char ECHO_PAYLOAD[] = "mirrord-e2e-ping";

static const char *errno_name(int error) {
    const char *name = strerrorname_np(error);
    return name ? name : "EUNKNOWN";
}

static void check_file(const char *path) {
    FILE *file = fopen(path, "r");
    if (!file) {
        printf("file %s: ERR %s\n", path, errno_name(errno));
        return;
    }
    char line[4096] = "";
    if (!fgets(line, sizeof line, file) && ferror(file)) {
        printf("file %s: ERR %s\n", path, errno_name(errno));
        fclose(file);
        return;
    }
    fclose(file);
    line[strcspn(line, "\n")] = '\0';
    printf("file %s: %s\n", path, line);
}

struct lookup {
    char name[256];
    char answer[128];
    int done;
    pthread_mutex_t lock;
    pthread_cond_t finished;
};

static void *lookup_thread(void *argument) {
    struct lookup *lookup = argument;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *result = NULL;
    char answer[128];
    int status = getaddrinfo(lookup->name, NULL, &hints, &result);
    if (status != 0) {
        snprintf(answer, sizeof answer, "ERR %s", gai_strerror(status));
    } else {
        struct sockaddr_in *address = (struct sockaddr_in *)result->ai_addr;
        inet_ntop(AF_INET, &address->sin_addr, answer, sizeof answer);
        freeaddrinfo(result);
    }
    pthread_mutex_lock(&lookup->lock);
    strcpy(lookup->answer, answer);
    lookup->done = 1;
    pthread_cond_signal(&lookup->finished);
    pthread_mutex_unlock(&lookup->lock);
    return NULL;
}

/* Resolves NAME into ANSWER (an address or "ERR …"), waiting at most TIMEOUT_SECONDS. A lookup
 * that times out is left running detached; its memory is leaked on purpose. */
static void resolve(const char *name, char *answer, size_t size) {
    struct lookup *lookup = calloc(1, sizeof *lookup);
    snprintf(lookup->name, sizeof lookup->name, "%s", name);
    pthread_mutex_init(&lookup->lock, NULL);
    pthread_cond_init(&lookup->finished, NULL);
    pthread_t thread;
    if (pthread_create(&thread, NULL, lookup_thread, lookup) != 0) {
        snprintf(answer, size, "ERR cannot start a thread");
        return;
    }
    pthread_detach(thread);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += TIMEOUT_SECONDS;
    pthread_mutex_lock(&lookup->lock);
    while (!lookup->done) {
        if (pthread_cond_timedwait(&lookup->finished, &lookup->lock, &deadline) == ETIMEDOUT) break;
    }
    snprintf(answer, size, "%s", lookup->done ? lookup->answer : "ERR timeout");
    int done = lookup->done;
    pthread_mutex_unlock(&lookup->lock);
    if (done) free(lookup);
}

static void set_timeouts(int fd) {
    struct timeval timeout = {.tv_sec = TIMEOUT_SECONDS};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

static const char *socket_error(int error) {
    return (error == EAGAIN || error == EWOULDBLOCK || error == EINPROGRESS) ? "timeout"
                                                                            : errno_name(error);
}

/* TCP (SOCK_STREAM) or UDP (SOCK_DGRAM) echo through a connected socket. */
static void echo(const char *kind, int type, const char *target) {
    char host[256];
    snprintf(host, sizeof host, "%s", target);
    char *colon = strrchr(host, ':');
    if (!colon) {
        printf("%s %s: ERR bad target\n", kind, target);
        return;
    }
    *colon = '\0';
    int port = atoi(colon + 1);
    char address[128];
    resolve(host, address, sizeof address);
    if (strncmp(address, "ERR", 3) == 0) {
        printf("%s %s: %s\n", kind, target, address);
        return;
    }
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, address, &peer.sin_addr);
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) {
        printf("%s %s: ERR %s\n", kind, target, errno_name(errno));
        return;
    }
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
        printf("%s %s: ERR %s\n", kind, target, socket_error(errno));
        close(fd);
        return;
    }
    size_t length = strlen(ECHO_PAYLOAD);
    if (send(fd, ECHO_PAYLOAD, length, 0) != (ssize_t)length) {
        printf("%s %s: ERR %s\n", kind, target, socket_error(errno));
        close(fd);
        return;
    }
    char received[256] = "";
    size_t have = 0;
    while (have < length) {
        ssize_t count = recv(fd, received + have, sizeof received - 1 - have, 0);
        if (count < 0) {
            printf("%s %s: ERR %s\n", kind, target, socket_error(errno));
            close(fd);
            return;
        }
        if (count == 0) break;
        have += (size_t)count;
        if (type == SOCK_DGRAM) break;
    }
    close(fd);
    received[have] = '\0';
    printf("%s %s: %s\n", kind, target, have ? received : "ERR closed");
}

/* How an unconnected socket reads the answer: recvfrom without or with the source, recvmsg with
 * msg_name, two buffers and an IP_PKTINFO control message, or recvmmsg into the first of two
 * messages. */
enum answer_read { PLAIN, RECVFROM_SOURCE, RECVMSG_SOURCE, RECVMMSG_SOURCE };

/* How an unconnected socket sends the datagram: sendto, sendmsg with msg_name (and an IP_TOS
 * control message), or sendmmsg of two copies. */
enum datagram_send { SENDTO, SENDMSG, SENDMSG_CONTROL, SENDMMSG };

/* UDP echo from an unconnected socket: the datagram goes out as use_sendmsg says, the answer is
 * read as show_source says. */
static void echo_unconnected(const char *kind, enum datagram_send use_sendmsg, enum answer_read show_source,
                             const char *target) {
    char host[256];
    snprintf(host, sizeof host, "%s", target);
    char *colon = strrchr(host, ':');
    if (!colon) {
        printf("%s %s: ERR bad target\n", kind, target);
        return;
    }
    *colon = '\0';
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &peer.sin_addr) != 1) {
        printf("%s %s: ERR not an IPv4 address\n", kind, target);
        return;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        printf("%s %s: ERR %s\n", kind, target, errno_name(errno));
        return;
    }
    set_timeouts(fd);
    size_t length = strlen(ECHO_PAYLOAD);
    ssize_t sent;
    if (use_sendmsg == SENDMMSG) {
        struct iovec whole = {(void *)ECHO_PAYLOAD, length};
        struct mmsghdr messages[2];
        for (int index = 0; index < 2; index++) {
            messages[index] = (struct mmsghdr){.msg_hdr = {.msg_name = &peer,
                                                           .msg_namelen = sizeof peer,
                                                           .msg_iov = &whole,
                                                           .msg_iovlen = 1}};
        }
        int went = sendmmsg(fd, messages, 2, 0);
        sent = went == 2 && messages[1].msg_len == length ? (ssize_t)length : went < 0 ? -1 : 0;
    } else if (use_sendmsg != SENDTO) {
        struct iovec parts[2] = {{(void *)ECHO_PAYLOAD, 6}, {(void *)(ECHO_PAYLOAD + 6), length - 6}};
        union {
            struct cmsghdr align;
            char bytes[CMSG_SPACE(sizeof(int))];
        } control;
        struct msghdr message = {
            .msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = parts, .msg_iovlen = 2};
        if (use_sendmsg == SENDMSG_CONTROL) {
            memset(&control, 0, sizeof control);
            message.msg_control = control.bytes;
            message.msg_controllen = sizeof control.bytes;
            struct cmsghdr *header = CMSG_FIRSTHDR(&message);
            header->cmsg_level = IPPROTO_IP;
            header->cmsg_type = IP_TOS;
            header->cmsg_len = CMSG_LEN(sizeof(int));
            int tos = 0x10;
            memcpy(CMSG_DATA(header), &tos, sizeof tos);
        }
        sent = sendmsg(fd, &message, 0);
    } else {
        sent = sendto(fd, ECHO_PAYLOAD, length, 0, (struct sockaddr *)&peer, sizeof peer);
    }
    if (sent != (ssize_t)length) {
        printf("%s %s: ERR %s\n", kind, target, socket_error(errno));
        close(fd);
        return;
    }
    char received[256] = "";
    struct sockaddr_in source = {0};
    socklen_t source_length = sizeof source;
    int pktinfo = 0;
    ssize_t count;
    if (show_source == RECVMSG_SOURCE) {
        int on = 1;
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
        struct iovec parts[2] = {{received, 4}, {received + 4, sizeof received - 5}};
        union {
            struct cmsghdr align;
            char bytes[CMSG_SPACE(sizeof(struct in_pktinfo))];
        } control;
        struct msghdr message = {.msg_name = &source,
                                 .msg_namelen = sizeof source,
                                 .msg_iov = parts,
                                 .msg_iovlen = 2,
                                 .msg_control = control.bytes,
                                 .msg_controllen = sizeof control.bytes};
        count = recvmsg(fd, &message, 0);
        for (struct cmsghdr *header = count < 0 ? NULL : CMSG_FIRSTHDR(&message); header;
             header = CMSG_NXTHDR(&message, header)) {
            if (header->cmsg_level == IPPROTO_IP && header->cmsg_type == IP_PKTINFO) pktinfo = 1;
        }
    } else if (show_source == RECVMMSG_SOURCE) {
        char second[64];
        struct sockaddr_in second_source;
        struct iovec parts[2] = {{received, sizeof received - 1}, {second, sizeof second}};
        struct mmsghdr messages[2] = {
            {.msg_hdr = {.msg_name = &source, .msg_namelen = sizeof source, .msg_iov = &parts[0],
                         .msg_iovlen = 1}},
            {.msg_hdr = {.msg_name = &second_source, .msg_namelen = sizeof second_source,
                         .msg_iov = &parts[1], .msg_iovlen = 1}}};
        int got = recvmmsg(fd, messages, 2, MSG_WAITFORONE, NULL);
        count = got < 1 ? -1 : (ssize_t)messages[0].msg_len;
    } else if (show_source == RECVFROM_SOURCE) {
        count = recvfrom(fd, received, sizeof received - 1, 0, (struct sockaddr *)&source,
                         &source_length);
    } else {
        count = recvfrom(fd, received, sizeof received - 1, 0, NULL, NULL);
    }
    close(fd);
    if (count < 0) {
        printf("%s %s: ERR %s\n", kind, target, socket_error(errno));
        return;
    }
    received[count] = '\0';
    if (show_source != PLAIN) {
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &source.sin_addr, ip, sizeof ip);
        printf("%s %s: %s from %s:%u%s\n", kind, target, received, ip, ntohs(source.sin_port),
               show_source == RECVMSG_SOURCE ? (pktinfo ? " with pktinfo" : " without pktinfo")
                                             : "");
    } else {
        printf("%s %s: %s\n", kind, target, received);
    }
}

static void check_write(const char *spec) {
    char path[4096];
    snprintf(path, sizeof path, "%s", spec);
    char *equals = strchr(path, '=');
    const char *text = "";
    if (equals) {
        *equals = '\0';
        text = equals + 1;
    }
    FILE *file = fopen(path, "w");
    if (!file) {
        printf("write %s: ERR %s\n", path, errno_name(errno));
        return;
    }
    fputs(text, file);
    if (fclose(file) != 0) {
        printf("write %s: ERR %s\n", path, errno_name(errno));
        return;
    }
    printf("write %s: ok\n", path);
}

static void check(const char *spec) {
    const char *colon = strchr(spec, ':');
    size_t kind_length = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *argument = colon ? colon + 1 : "";
#define IS(kind) (kind_length == strlen(kind) && strncmp(spec, kind, kind_length) == 0)
    if (IS("file")) {
        check_file(argument);
    } else if (IS("env")) {
        const char *value = getenv(argument);
        printf("env %s: %s\n", argument, value ? value : "MISSING");
    } else if (IS("dns")) {
        char answer[128];
        resolve(argument, answer, sizeof answer);
        printf("dns %s: %s\n", argument, answer);
    } else if (IS("tcp")) {
        echo("tcp", SOCK_STREAM, argument);
    } else if (IS("udp")) {
        echo("udp", SOCK_DGRAM, argument);
    } else if (IS("udpto")) {
        echo_unconnected("udpto", SENDTO, PLAIN, argument);
    } else if (IS("udpmsg")) {
        echo_unconnected("udpmsg", SENDMSG, PLAIN, argument);
    } else if (IS("udpmsgctl")) {
        echo_unconnected("udpmsgctl", SENDMSG_CONTROL, PLAIN, argument);
    } else if (IS("udpmmsg")) {
        echo_unconnected("udpmmsg", SENDMMSG, PLAIN, argument);
    } else if (IS("udpfrom")) {
        echo_unconnected("udpfrom", SENDTO, RECVFROM_SOURCE, argument);
    } else if (IS("udprecvmsg")) {
        echo_unconnected("udprecvmsg", SENDTO, RECVMSG_SOURCE, argument);
    } else if (IS("udprecvmmsg")) {
        echo_unconnected("udprecvmmsg", SENDTO, RECVMMSG_SOURCE, argument);
    } else if (IS("write")) {
        check_write(argument);
    } else if (IS("hostname")) {
        char name[256] = "";
        if (gethostname(name, sizeof name) != 0) {
            printf("hostname: ERR %s\n", errno_name(errno));
        } else {
            printf("hostname: %s\n", name);
        }
    } else {
        printf("unknown check: %s\n", spec);
    }
#undef IS
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s [fork] CHECK...\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "fork") == 0) {
        fflush(stdout);
        pid_t child = fork();
        if (child < 0) {
            printf("fork: ERR %s\n", errno_name(errno));
            return 1;
        }
        if (child == 0) {
            for (int index = 2; index < argc; index++) check(argv[index]);
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        waitpid(child, &status, 0);
        printf("fork: child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return 0;
    }
    for (int index = 1; index < argc; index++) check(argv[index]);
    return 0;
}
