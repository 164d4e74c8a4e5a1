// What a Go program sees: one line per check, in the format the e2e tests parse (the same as
// probe.py's). Go makes its own system calls, so under mirrord it takes the system-call path.
//
// Usage:
//
//	probe CHECK...                 run the checks in this process
//	probe exec PROGRAM ARG...      run PROGRAM with os/exec and copy its output
//	probe many N DIR               N goroutines each read DIR/file-I.txt at once; prints
//	                               "many: ok" or the first mismatch
//	probe serve ADDRESS            an HTTP server answering "go server: METHOD PATH"; prints
//	                               "serving ADDRESS" once it listens, "request /peer from
//	                               REMOTE_ADDR" for each request of /peer and "request /local
//	                               at LOCAL_ADDR" (the connection's own end) for each of /local
//	probe load URL CONNS SECONDS   GETs URL on CONNS keep-alive connections for SECONDS; prints
//	                               "load: RATE requests/s (N answered, M failed)"
//	probe read PATH                read PATH to the end; prints "read PATH: BYTES bytes in NS ns"
//
// Checks and their lines:
//
//	file:PATH          file PATH: <first line> | file PATH: ERR <errno name>
//	dir:PATH           dir PATH: <sorted names, comma-separated> | dir PATH: ERR <errno name>
//	stat:PATH          stat PATH: <size> <dir|file|link> | stat PATH: ERR <errno name>
//	env:NAME           env NAME: <value> | env NAME: MISSING
//	write:PATH=TEXT    write PATH: ok | write PATH: ERR <errno name>
//	dns:NAME           dns NAME: <first IPv4 address> | dns NAME: ERR <reason>
//	tcp:HOST:PORT      tcp HOST:PORT: <echoed text> | tcp HOST:PORT: ERR <reason>
//	udp:HOST:PORT      udp HOST:PORT: <echoed text> | udp HOST:PORT: ERR <reason>
//	udpto:HOST:PORT    udpto HOST:PORT: <echoed text> (WriteTo/ReadFrom, unconnected socket)
//	udpfrom:HOST:PORT  udpfrom HOST:PORT: <echoed text> from <the source ReadFrom reports>
//	udpmsgfrom:HOST:PORT  udpmsgfrom HOST:PORT: <echoed text> from <the source ReadMsgUDP (recvmsg) reports>
//	udpmsgctl:HOST:PORT   udpmsgctl HOST:PORT: <echoed text> (sent with WriteMsgUDP: sendmsg with an IP_TOS control message)
//	http:URL           http URL: <status> <first line of the body> | http URL: ERR <reason>
//	unix:PATH          unix PATH: <body of an HTTP/1.0 GET over the unix socket> | unix PATH: ERR <errno name>
//	hostname           hostname: <name>
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const timeout = 2 * time.Second
const echoPayload = "mirrord-e2e-ping"

func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name, ok := errnoNames[errno]; ok {
			return name
		}
		return fmt.Sprintf("E%d", int(errno))
	}
	return err.Error()
}

var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT:  "ENOENT",
	syscall.EACCES:  "EACCES",
	syscall.EPERM:   "EPERM",
	syscall.EROFS:   "EROFS",
	syscall.EIO:     "EIO",
	syscall.ENOTDIR: "ENOTDIR",
	syscall.EISDIR:  "EISDIR",
	syscall.ENOSYS:  "ENOSYS",
	syscall.EEXIST:  "EEXIST",
}

func firstLine(path string) string {
	file, err := os.Open(path)
	if err != nil {
		return "ERR " + errnoName(err)
	}
	defer file.Close()
	line, err := bufio.NewReader(file).ReadString('\n')
	if err != nil && err != io.EOF {
		return "ERR " + errnoName(err)
	}
	return strings.TrimSuffix(line, "\n")
}

func listDir(path string) string {
	entries, err := os.ReadDir(path)
	if err != nil {
		return "ERR " + errnoName(err)
	}
	names := make([]string, 0, len(entries))
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func statPath(path string) string {
	info, err := os.Lstat(path)
	if err != nil {
		return "ERR " + errnoName(err)
	}
	kind := "file"
	if info.IsDir() {
		kind = "dir"
	} else if info.Mode()&os.ModeSymlink != 0 {
		kind = "link"
	}
	return fmt.Sprintf("%d %s", info.Size(), kind)
}

func writeFile(spec string) (string, string) {
	path, text, _ := strings.Cut(spec, "=")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return path, "ERR " + errnoName(err)
	}
	return path, "ok"
}

func resolve(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addresses, err := net.DefaultResolver.LookupIP(ctx, "ip4", name)
	if err != nil {
		return "ERR " + err.Error()
	}
	return addresses[0].String()
}

func echo(network, target string) string {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "ERR " + err.Error()
	}
	address := resolve(host)
	if strings.HasPrefix(address, "ERR") {
		return address
	}
	connection, err := net.DialTimeout(network, net.JoinHostPort(address, port), timeout)
	if err != nil {
		return "ERR " + err.Error()
	}
	defer connection.Close()
	connection.SetDeadline(time.Now().Add(timeout))
	if _, err := connection.Write([]byte(echoPayload)); err != nil {
		return "ERR " + err.Error()
	}
	buffer := make([]byte, 2048)
	received := 0
	for received < len(echoPayload) {
		count, err := connection.Read(buffer[received:])
		if err != nil {
			return "ERR " + err.Error()
		}
		received += count
		if network == "udp" {
			break
		}
	}
	return string(buffer[:received])
}

// echoUnconnected sends the payload with WriteTo (or WriteMsgUDP with a control message) from an
// unconnected UDP socket and reads the answer with ReadFrom.
func echoUnconnected(target string, withControl bool) string {
	text, _ := echoUnconnectedFrom(target, false, withControl)
	return text
}

// echoUnconnectedFrom is echoUnconnected, also returning the source the read reports; withMessage
// reads with ReadMsgUDP (recvmsg, with room for control data) instead of ReadFrom (recvfrom), and
// withControl sends with WriteMsgUDP and a control message instead of WriteTo.
func echoUnconnectedFrom(target string, withMessage, withControl bool) (string, string) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "ERR " + err.Error(), ""
	}
	address := resolve(host)
	if strings.HasPrefix(address, "ERR") {
		return address, ""
	}
	destination, err := net.ResolveUDPAddr("udp", net.JoinHostPort(address, port))
	if err != nil {
		return "ERR " + err.Error(), ""
	}
	connection, err := net.ListenUDP("udp", nil)
	if err != nil {
		return "ERR " + err.Error(), ""
	}
	defer connection.Close()
	connection.SetDeadline(time.Now().Add(timeout))
	if withControl {
		// One IP_TOS control message, as QUIC stacks send with every datagram.
		control := make([]byte, syscall.CmsgSpace(4))
		header := (*syscall.Cmsghdr)(unsafe.Pointer(&control[0]))
		header.Level = syscall.IPPROTO_IP
		header.Type = syscall.IP_TOS
		header.SetLen(syscall.CmsgLen(4))
		control[syscall.CmsgLen(0)] = 0x10
		if _, _, err := connection.WriteMsgUDP([]byte(echoPayload), control, destination); err != nil {
			return "ERR " + err.Error(), ""
		}
	} else if _, err := connection.WriteTo([]byte(echoPayload), destination); err != nil {
		return "ERR " + err.Error(), ""
	}
	buffer := make([]byte, 2048)
	var count int
	var source net.Addr
	if withMessage {
		var from *net.UDPAddr
		count, _, _, from, err = connection.ReadMsgUDP(buffer, make([]byte, 128))
		if from != nil {
			source = from
		}
	} else {
		count, source, err = connection.ReadFrom(buffer)
	}
	if err != nil {
		return "ERR " + err.Error(), ""
	}
	if source == nil {
		return string(buffer[:count]), "nothing"
	}
	return string(buffer[:count]), source.String()
}

func httpGet(url string) string {
	client := http.Client{Timeout: timeout}
	response, err := client.Get(url)
	if err != nil {
		return "ERR " + err.Error()
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	line, _, _ := strings.Cut(string(body), "\n")
	return fmt.Sprintf("%d %s", response.StatusCode, line)
}

// unixGet sends an HTTP/1.0 GET over the unix stream socket at path and returns the body.
func unixGet(path string) string {
	connection, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return "ERR " + errnoName(err)
	}
	defer connection.Close()
	connection.SetDeadline(time.Now().Add(timeout))
	if _, err := connection.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		return "ERR " + errnoName(err)
	}
	response, err := io.ReadAll(connection)
	if err != nil {
		return "ERR " + errnoName(err)
	}
	_, body, _ := strings.Cut(string(response), "\r\n\r\n")
	return body
}

func check(spec string) {
	kind, argument, _ := strings.Cut(spec, ":")
	switch kind {
	case "file":
		fmt.Printf("file %s: %s\n", argument, firstLine(argument))
	case "dir":
		fmt.Printf("dir %s: %s\n", argument, listDir(argument))
	case "stat":
		fmt.Printf("stat %s: %s\n", argument, statPath(argument))
	case "env":
		value, ok := os.LookupEnv(argument)
		if !ok {
			value = "MISSING"
		}
		fmt.Printf("env %s: %s\n", argument, value)
	case "write":
		path, result := writeFile(argument)
		fmt.Printf("write %s: %s\n", path, result)
	case "dns":
		fmt.Printf("dns %s: %s\n", argument, resolve(argument))
	case "tcp":
		fmt.Printf("tcp %s: %s\n", argument, echo("tcp", argument))
	case "udp":
		fmt.Printf("udp %s: %s\n", argument, echo("udp", argument))
	case "udpto":
		fmt.Printf("udpto %s: %s\n", argument, echoUnconnected(argument, false))
	case "udpmsgctl":
		fmt.Printf("udpmsgctl %s: %s\n", argument, echoUnconnected(argument, true))
	case "udpfrom":
		text, source := echoUnconnectedFrom(argument, false, false)
		fmt.Printf("udpfrom %s: %s from %s\n", argument, text, source)
	case "udpmsgfrom":
		text, source := echoUnconnectedFrom(argument, true, false)
		fmt.Printf("udpmsgfrom %s: %s from %s\n", argument, text, source)
	case "http":
		fmt.Printf("http %s: %s\n", argument, httpGet(argument))
	case "unix":
		fmt.Printf("unix %s: %s\n", argument, unixGet(argument))
	case "hostname":
		name, err := os.Hostname()
		if err != nil {
			name = "ERR " + errnoName(err)
		}
		fmt.Printf("hostname: %s\n", name)
	default:
		fmt.Printf("%s: ERR unknown check\n", spec)
	}
}

// many reads DIR/file-I.txt from N goroutines at once; each file holds "file I".
func many(count int, dir string) {
	var wait sync.WaitGroup
	failures := make(chan string, count)
	start := make(chan struct{})
	for index := 0; index < count; index++ {
		wait.Add(1)
		go func(index int) {
			defer wait.Done()
			<-start
			path := fmt.Sprintf("%s/file-%d.txt", dir, index)
			data, err := os.ReadFile(path)
			want := fmt.Sprintf("file %d", index)
			if err != nil {
				failures <- fmt.Sprintf("%s: ERR %s", path, errnoName(err))
			} else if strings.TrimSpace(string(data)) != want {
				failures <- fmt.Sprintf("%s: got %q, want %q", path, data, want)
			}
		}(index)
	}
	close(start)
	wait.Wait()
	close(failures)
	for failure := range failures {
		fmt.Printf("many: %s\n", failure)
		return
	}
	fmt.Println("many: ok")
}

// load sends GET requests to url from `connections` goroutines, each on its own keep-alive
// connection, for `seconds`, and prints the rate of answered requests.
func load(url string, connections int, seconds int) {
	transport := &http.Transport{
		MaxIdleConns:        connections,
		MaxIdleConnsPerHost: connections,
		MaxConnsPerHost:     connections,
		DisableCompression:  true,
	}
	client := http.Client{Transport: transport, Timeout: timeout}
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var answered, failed atomic.Int64
	var wait sync.WaitGroup
	started := time.Now()
	for index := 0; index < connections; index++ {
		wait.Add(1)
		go func() {
			defer wait.Done()
			for time.Now().Before(deadline) {
				response, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, response.Body)
				response.Body.Close()
				if response.StatusCode == http.StatusOK {
					answered.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wait.Wait()
	elapsed := time.Since(started).Seconds()
	fmt.Printf("load: %.0f requests/s (%d answered, %d failed)\n", float64(answered.Load())/elapsed, answered.Load(), failed.Load())
}

func main() {
	arguments := os.Args[1:]
	if len(arguments) == 0 {
		fmt.Fprintln(os.Stderr, "usage: probe CHECK... | exec PROGRAM ARG... | many N DIR | serve ADDRESS | load URL CONNECTIONS SECONDS | read PATH")
		os.Exit(2)
	}
	switch arguments[0] {
	case "exec":
		command := exec.Command(arguments[1], arguments[2:]...)
		command.Stdout = os.Stdout
		command.Stderr = os.Stderr
		if err := command.Run(); err != nil {
			fmt.Printf("exec %s: ERR %s\n", arguments[1], err)
			os.Exit(1)
		}
	case "many":
		count, _ := strconv.Atoi(arguments[1])
		many(count, arguments[2])
	case "serve":
		listener, err := net.Listen("tcp", arguments[1])
		if err != nil {
			fmt.Printf("serve %s: ERR %s\n", arguments[1], err)
			os.Exit(1)
		}
		fmt.Printf("serving %s\n", arguments[1])
		handler := http.HandlerFunc(func(writer http.ResponseWriter, request *http.Request) {
			if request.URL.Path == "/peer" {
				fmt.Printf("request %s from %s\n", request.URL.Path, request.RemoteAddr)
			}
			if request.URL.Path == "/local" {
				local := request.Context().Value(http.LocalAddrContextKey).(net.Addr)
				fmt.Printf("request %s at %s\n", request.URL.Path, local)
			}
			fmt.Fprintf(writer, "go server: %s %s\n", request.Method, request.URL.Path)
		})
		if err := http.Serve(listener, handler); err != nil {
			fmt.Printf("serve %s: ERR %s\n", arguments[1], err)
			os.Exit(1)
		}
	case "load":
		connections, _ := strconv.Atoi(arguments[2])
		seconds, _ := strconv.Atoi(arguments[3])
		load(arguments[1], connections, seconds)
	case "read":
		started := time.Now()
		file, err := os.Open(arguments[1])
		if err != nil {
			fmt.Printf("read %s: ERR %s\n", arguments[1], errnoName(err))
			os.Exit(1)
		}
		total, err := io.Copy(io.Discard, file)
		if err != nil {
			fmt.Printf("read %s: ERR %s\n", arguments[1], errnoName(err))
			os.Exit(1)
		}
		fmt.Printf("read %s: %d bytes in %d ns\n", arguments[1], total, time.Since(started).Nanoseconds())
	default:
		for _, spec := range arguments {
			check(spec)
		}
	}
}
