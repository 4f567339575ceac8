// Package depspin keeps the examples' and end-to-end tests' dependencies in go.mod while they are
// being written. Temporary: delete it once real code imports them.
package depspin

import (
	_ "github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	_ "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	_ "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	_ "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
)
