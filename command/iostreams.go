package command

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IOStreams are a command's standard input, output and error. Tests use
// buffers; Execute uses the process's own.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	inRead bool // stdin has been consumed (by `key=-` or a prompt)
}

// System returns the process's standard streams.
func System() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// terminalFd returns the file descriptor of stdin when it is a terminal.
func (s *IOStreams) terminalFd() (int, bool) {
	f, ok := s.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	return int(f.Fd()), true
}

// Interactive reports whether standard input is a terminal, where a
// prompt can be shown and typing hidden.
func (s *IOStreams) Interactive() bool {
	_, ok := s.terminalFd()
	return ok
}

// ReadSecret asks for a secret (an unseal key, a token). On a terminal it
// prompts on stderr and reads without echo; otherwise it reads one line of
// stdin, so `echo KEY | secrethub operator unseal` works. Spaces around
// the value are dropped.
func (s *IOStreams) ReadSecret(ctx context.Context, prompt string) (string, error) {
	line, err := s.readLine(ctx, prompt)
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("an empty value was given")
	}
	return line, nil
}

// ReadPassword is ReadSecret for a password: only the line ending is
// removed, so spaces at either end stay part of it. On a terminal it may
// be called more than once (to confirm a new password).
func (s *IOStreams) ReadPassword(ctx context.Context, prompt string) (string, error) {
	line, err := s.readLine(ctx, prompt)
	if err != nil {
		return "", err
	}
	if line == "" {
		return "", errors.New("an empty password was given")
	}
	return line, nil
}

// readLine reads one line without its line ending: hidden after a prompt
// on a terminal, else from stdin, which only one reader may consume.
func (s *IOStreams) readLine(ctx context.Context, prompt string) (string, error) {
	if fd, ok := s.terminalFd(); ok {
		return readHidden(ctx, fd, s.ErrOut, prompt)
	}
	if err := s.claimStdin(); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(s.In).ReadString('\n')
	if errors.Is(err, io.EOF) && line != "" {
		err = nil
	}
	if errors.Is(err, io.EOF) {
		return "", errors.New("nothing to read on standard input")
	}
	if err != nil {
		return "", err
	}
	return trimLineEnding(line), nil
}

// trimLineEnding drops one trailing "\n" or "\r\n".
func trimLineEnding(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// readHidden reads a line with echo off. An interrupt restores the
// terminal before returning, so the shell is not left without echo.
func readHidden(ctx context.Context, fd int, w io.Writer, prompt string) (string, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return "", err
	}
	fmt.Fprint(w, prompt)
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(w)
		return string(r.b), r.err
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		fmt.Fprintln(w)
		return "", errors.New("interrupted")
	}
}

// Confirm asks a yes/no question on the terminal: the prompt goes to
// stderr and the answer, typed visibly, is read from stdin. Only "y" and
// "yes" (any case) are a yes. An interrupt is an error, not a no.
func (s *IOStreams) Confirm(ctx context.Context, prompt string) (bool, error) {
	if err := s.claimStdin(); err != nil {
		return false, err
	}
	fmt.Fprint(s.ErrOut, prompt)
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(s.In).ReadString('\n')
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && (!errors.Is(r.err, io.EOF) || r.line == "") {
			fmt.Fprintln(s.ErrOut)
			return false, errors.New("no answer was given")
		}
		answer := strings.ToLower(strings.TrimSpace(r.line))
		return answer == "y" || answer == "yes", nil
	case <-ctx.Done():
		fmt.Fprintln(s.ErrOut)
		return false, errors.New("interrupted")
	}
}

// ReadAll reads the whole of stdin, once (for `kv put key=-`).
func (s *IOStreams) ReadAll() ([]byte, error) {
	if err := s.claimStdin(); err != nil {
		return nil, err
	}
	return io.ReadAll(s.In)
}

// claimStdin makes sure standard input is read by one consumer only.
func (s *IOStreams) claimStdin() error {
	if s.inRead {
		return errors.New("standard input can be read only once per command")
	}
	s.inRead = true
	return nil
}
