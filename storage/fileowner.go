package storage

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrWrongOwner refuses a restore that would leave the database owned by
// someone other than the user the server runs as.
var ErrWrongOwner = errors.New("storage: the restored database would not belong to the database's owner")

// fileOwner is the numeric owner and group of a file.
type fileOwner struct {
	uid, gid int
}

// ownerOf reads the owner of the file info describes.
func ownerOf(info os.FileInfo) (fileOwner, error) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileOwner{}, fmt.Errorf("storage: cannot read the owner of %s", info.Name())
	}
	return fileOwner{uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// ownerAction is what a restore does about the owner of a file it made.
type ownerAction int

const (
	// ownerKeep: the file already has the wanted owner.
	ownerKeep ownerAction = iota
	// ownerChange: chown the file to the wanted owner.
	ownerChange
	// ownerRefuse: the process may not give the file the wanted owner.
	ownerRefuse
)

// decideOwner says how a file made by a process with effective uid euid,
// owned by made, gets the owner want. Root may give it any owner; another
// user may only change the group of a file it owns (chown(2) checks that
// the user is in the group), never its owner.
func decideOwner(want, made fileOwner, euid int) ownerAction {
	switch {
	case want == made:
		return ownerKeep
	case euid == 0 || want.uid == made.uid:
		return ownerChange
	default:
		return ownerRefuse
	}
}

// giveOwner makes f, just created in dataDir, owned by want, or refuses
// with the command that runs the restore as the right user.
func giveOwner(f *os.File, want fileOwner, dataDir string) error {
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	made, err := ownerOf(info)
	if err != nil {
		return err
	}
	refuse := func(cause string) error {
		return fmt.Errorf("%w: the data in %s belongs to uid %d gid %d, %s; run the restore as that user "+
			"(sudo -u secrethub secrethub operator snapshot restore FILE) or as root", ErrWrongOwner, dataDir, want.uid, want.gid, cause)
	}
	switch decideOwner(want, made, os.Geteuid()) {
	case ownerRefuse:
		return refuse(fmt.Sprintf("but this restore runs as uid %d", made.uid))
	case ownerChange:
		if err := f.Chown(want.uid, want.gid); err != nil {
			return refuse(fmt.Sprintf("and uid %d cannot give a file that owner (%v)", made.uid, err))
		}
	}
	return nil
}
