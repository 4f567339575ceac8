package emulator_test

import (
	"fmt"
	"time"

	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

func ExampleEmulator_RolloverSigningKey() {
	emu := mustStart()
	defer emu.Close()
	check(emu.RegisterSecretApp(tenantID, apiClientID, "api-secret"))
	app, err := obo.NewAppWithSecret(tenantID, apiClientID, "api-secret", &obo.AppOptions{ClientOptions: emu.ClientOptions()})
	check(err)
	alice := emulator.User{ObjectID: "aaaaaaaa-0000-4000-8000-0000000000a1", UserPrincipalName: "alice@contoso.example"}

	_, err = app.Credential(emu.UserToken(tenantID, apiClientID, alice, time.Hour))
	check(err)
	before := emu.Counts().SigningKeyFetches
	emu.RolloverSigningKey() // Entra signs with a new key; the old one stays published
	_, err = app.Credential(emu.UserToken(tenantID, apiClientID, alice, 2*time.Hour))
	check(err)
	fmt.Println("keys published:", len(emu.SigningKeyIDs()), "refetches for the new kid:", emu.Counts().SigningKeyFetches-before)
	// Output: keys published: 2 refetches for the new kid: 1
}

func ExampleEmulator_RetireOldSigningKeys() {
	emu := mustStart()
	defer emu.Close()
	old := emu.UserToken(tenantID, apiClientID, emulator.User{ObjectID: "aaaaaaaa-0000-4000-8000-0000000000a1"}, time.Hour)
	emu.RolloverSigningKey()
	emu.RetireOldSigningKeys()
	_, err := emu.VerifyToken(old)
	fmt.Println(len(emu.SigningKeyIDs()), err != nil)
	// Output: 1 true
}

func ExampleEmulator_SigningKeyIDs() {
	emu := mustStart()
	defer emu.Close()
	first := emu.SigningKeyIDs()
	next := emu.RolloverSigningKey()
	ids := emu.SigningKeyIDs()
	fmt.Println(len(first), len(ids), ids[0] == first[0], ids[1] == next)
	// Output: 1 2 true true
}
