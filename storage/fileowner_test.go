package storage

import "testing"

func TestDecideOwner(t *testing.T) {
	secrethub, root, alice := fileOwner{uid: 998, gid: 998}, fileOwner{uid: 0, gid: 0}, fileOwner{uid: 1000, gid: 1000}
	cases := []struct {
		name       string
		want, made fileOwner
		euid       int
		action     ownerAction
	}{
		{"a file made by the data's owner is kept as it is", secrethub, secrethub, 998, ownerKeep},
		{"root gives its file to the data's owner", secrethub, root, 0, ownerChange},
		{"root keeps a file for root-owned data", root, root, 0, ownerKeep},
		{"another user is refused", secrethub, alice, 1000, ownerRefuse},
		{"a user restoring root-owned data is refused", root, alice, 1000, ownerRefuse},
		{"the owner may change only the group of its file", fileOwner{uid: 1000, gid: 998}, alice, 1000, ownerChange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := decideOwner(c.want, c.made, c.euid); got != c.action {
				t.Fatalf("decideOwner(%+v, %+v, %d) = %d, want %d", c.want, c.made, c.euid, got, c.action)
			}
		})
	}
}
