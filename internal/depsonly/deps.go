// Package depsonly pins the module's dependencies until real code imports them. Temporary.
package depsonly

import (
	_ "github.com/Azure/azure-sdk-for-go/sdk/azcore"
	_ "github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	_ "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	_ "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	_ "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	_ "github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/stretchr/testify/require"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sync/singleflight"
	_ "software.sslmate.com/src/go-pkcs12"
)
