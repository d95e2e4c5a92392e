// The job data account (main.bicep's deployDataAccount, the app setting BATCHFX_DATA_ACCOUNT):
// a second StorageV2 account, hardened like the app's own, with the containers job data lives
// in (the outputs container and the data containers) and Storage Blob Data Contributor on the
// whole account for the identities that manage job data (the main app's; the principalId
// user's). batchfx reaches it at https://<name>.blob.core.windows.net with the app's identity.
// Blobs only: the queues, the tables and the app's own containers stay in the app's account.
//
// A module, not resources under a condition in main.bicep, so that checkov sees its properties
// (it does not look inside a conditional resource's body).

@description('Name of the data account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

param location string

param tags object = {}

@description('Allow shared-key (connection string) access, as on the app\'s account.')
param allowSharedKeyAccess bool

@description('Blob containers to create: the outputs container and the containers jobs may name.')
param containerNames array

@description('Identities given Storage Blob Data Contributor on the whole account: objects with principalId and principalType.')
param blobContributors array = []

var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    defaultToOAuthAuthentication: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource blobContributorRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for contributor in blobContributors: {
    name: guid(storage.id, contributor.principalId, blobDataContributor)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
      principalId: contributor.principalId
      principalType: contributor.principalType
    }
  }
]

output name string = storage.name
