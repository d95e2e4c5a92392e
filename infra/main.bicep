// batchfx in Azure: the storage account (queues, tables, blob containers), Log Analytics and
// Application Insights, the Functions app on a Flex Consumption plan with a user-assigned
// identity, an Event Grid system topic for blob drops (and, once the function exists, its
// subscription, which dead-letters to a container), optionally a second storage account for
// job data (deployDataAccount) and optionally the GPU scorer on Azure Container Apps.
//
// Not yet deployed against a live subscription: see infra/README.md, "Not verified here".
//
//   scripts/deploy --resource-group <resource-group> --location <region>

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@description('Region for everything except the GPU scorer. It must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Short prefix for resource names: lowercase letters, digits, hyphens.')
@minLength(2)
@maxLength(12)
param namePrefix string = 'batchfx'

@description('Suffix that makes the names globally unique.')
param resourceToken string = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))

@description('Tags put on every resource.')
param tags object = {}

@description('Storage account name (3-24 lowercase letters and digits): the app\'s own account (AzureWebJobsStorage), and job data\'s too unless deployDataAccount.')
@maxLength(24)
param storageAccountName string = take(toLower(replace('st${namePrefix}${resourceToken}', '-', '')), 24)

@description('Keep job data in a second storage account (BATCHFX_DATA_ACCOUNT): the outputs container and the data containers are created there instead of in the app\'s account, which keeps batchfx\'s own container, the inbox, the host\'s containers, the queues and the tables. The GPU scorer then holds roles on the app\'s account for those of them it uses only. See infra/README.md, "A second storage account for job data".')
param deployDataAccount bool = false

@description('Name of the job data account (3-24 lowercase letters and digits), with deployDataAccount.')
@minLength(3)
@maxLength(24)
param dataStorageAccountName string = take(toLower(replace('st${namePrefix}data${resourceToken}', '-', '')), 24)

@description('Function app name (also the first label of its host name).')
param functionAppName string = 'func-${namePrefix}-${resourceToken}'

@description('User-assigned identity the function app runs as (storage, deployment package, Key Vault).')
param functionAppIdentityName string = 'id-${functionAppName}'

@description('Allow shared-key (connection string) access to the storage account (and to the data account, with deployDataAccount). The apps never use it: they connect with their managed identities. Keep it on to run the batchfx CLI with a connection string; turn it off to require Entra ID everywhere.')
param allowSharedKeyAccess bool = true

@description('Object id of a user or group to give the main app\'s storage data roles (and Storage Blob Data Contributor on the data account, with deployDataAccount), for example for the batchfx CLI signed in with az login. Empty: nobody.')
param principalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

// batchfx app settings (batchfx/core/settings.py). The queue-trigger bindings read
// %BATCHFX_QUEUE_NAME% and %BATCHFX_QUEUE_NAME%-poison, so the setting is always written.

@description('BATCHFX_QUEUE_NAME: the mini-batch queue (its poison queue is <name>-poison).')
@minLength(3)
@maxLength(56)
param queueName string = 'batchfx-minibatches'

@description('BATCHFX_JOBS_CONTAINER: blob container for job inputs, staged code and outputs.')
param jobsContainerName string = 'batchfx'

@description('BATCHFX_JOBS_TABLE: table of jobs.')
param jobsTableName string = 'batchfxjobs'

@description('BATCHFX_MINIBATCHES_TABLE: table of mini-batches.')
param minibatchesTableName string = 'batchfxminibatches'

@description('BATCHFX_POLL_INTERVAL_S: seconds between the orchestrator\'s progress checks.')
param pollIntervalSeconds string = '5'

@description('BATCHFX_LEASE_MARGIN_S: seconds of slack on a mini-batch lease.')
@minValue(1)
param leaseMarginSeconds int = 60

@description('BATCHFX_WORK_DIR: local scratch directory on each instance.')
param workDir string = '/tmp/batchfx'

@description('Name of an existing Key Vault in this resource group that scoring scripts read with azureml.core\'s get_secret (BATCHFX_KEY_VAULT_URL); the app\'s identity gets Key Vault Secrets User on it. Empty: none.')
param keyVaultName string = ''

// Flex Consumption scale.

@description('Most instances the function app scales out to.')
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Blob drop.

@description('BATCHFX_INBOX_CONTAINER: blob container watched for dropped job files.')
param inboxContainerName string = 'inbox'

@description('BATCHFX_OUTPUTS_CONTAINER: where a deployment that names no output writes.')
param outputsContainerName string = 'outputs'

@description('Containers created for job inputs and results, and the only ones besides the inbox, the outputs container and batchfx\'s own that a job spec may name (BATCHFX_ALLOWED_CONTAINERS). Never list azure-webjobs-*, app-package-* or the Durable task hub\'s containers.')
@minLength(1)
param dataContainerNames array = [
  'data'
]

@description('Blob container Event Grid writes blob-drop events to when it gives up delivering them (dead letters).')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Create the Event Grid subscription for BlobCreated in the inbox container. Leave false until the blob-drop function has been published: the subscription needs the function\'s webhook and its blobs_extension key, which only exist then.')
param deployEventGridSubscription bool = false

@description('Name of the Event Grid-source blob trigger function the subscription calls.')
param blobDropFunctionName string = 'submit_from_blob_drop'

// GPU scorer on Azure Container Apps.

@description('Deploy the GPU scorer (needs a pushed image in gpuImage and serverless GPU quota in gpuLocation).')
param deployGpuScorer bool = false

@description('Also run the queue scorer on the Flex app. Default: only when the GPU scorer is not deployed, so that GPU replicas get every mini-batch.')
param scoreOnFunctionApp bool = !deployGpuScorer

@description('Region of the GPU scorer\'s Container Apps environment; serverless GPUs are offered in some regions only.')
param gpuLocation string = location

@description('Serverless GPU workload profile: T4 (8 vCPU, 56 GiB) or A100 (24 vCPU, 220 GiB) per replica.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuWorkloadProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Image built from infra/gpu/Dockerfile, for example myacr.azurecr.io/batchfx-gpu:1. Required when deployGpuScorer is true.')
param gpuImage string = ''

@description('Existing container registry in this resource group that holds gpuImage; the scorer pulls with its identity. Empty: an image that needs no credentials.')
param containerRegistryName string = ''

@description('The longest run_invocation_timeout (seconds) of the jobs the GPU scorer runs: with BATCHFX_LEASE_MARGIN_S it sets how long a replica being scaled in may finish its mini-batch.')
@minValue(1)
param gpuRunInvocationTimeoutSeconds int = 60

@description('Seconds between SIGTERM and SIGKILL for a GPU replica; at least 2 x gpuRunInvocationTimeoutSeconds + leaseMarginSeconds: the host drains (it takes no new message and lets invocations end), and a script process may have one mini-batch running and the next one staged.')
param gpuTerminationGracePeriodSeconds int = (2 * gpuRunInvocationTimeoutSeconds) + leaseMarginSeconds + 30

@description('Messages waiting per GPU replica before KEDA adds one.')
@minValue(1)
param gpuQueueMessagesPerReplica int = 6

@description('Fewest GPU replicas (0 scales to zero when the queue is empty).')
@minValue(0)
param gpuMinReplicas int = 0

@description('Most GPU replicas (each holds one GPU).')
@minValue(1)
param gpuMaxReplicas int = 4

@description('Container app name of the GPU scorer.')
@maxLength(32)
param gpuScorerName string = take('gpu-${namePrefix}-${resourceToken}', 32)

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

// Flex Consumption deploys the code package to this container (read with the app's identity).
var deploymentContainerName = 'app-package-${resourceToken}'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2' // general-purpose v2: required for Event Grid blob events
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

// The Functions host's lock container is created here, not left to the host, because the GPU
// scorer's identity holds a role on it alone and cannot create containers.
var hostLocksContainerName = 'azure-webjobs-hosts'
// Containers jobs and the scorer use: batchfx's own, the inbox, the default outputs and the
// data containers (BATCHFX_ALLOWED_CONTAINERS).
var jobContainerNames = union([
  jobsContainerName
  inboxContainerName
  outputsContainerName
], dataContainerNames)
// The app's own containers, which stay in the app's account whatever BATCHFX_DATA_ACCOUNT says
// (batchfx.core.settings.Settings.is_app_container): batchfx's, the inbox (Event Grid watches this
// account) and the host's azure-webjobs-*.
var appContainerNames = [
  jobsContainerName
  inboxContainerName
]
// With deployDataAccount, every other job container (the outputs and the data containers) is
// in the data account, and only there.
var dataAccountContainerNames = deployDataAccount ? filter(jobContainerNames, c => !(contains(appContainerNames, c) || startsWith(c, 'azure-webjobs-'))) : []
var mainJobContainerNames = filter(jobContainerNames, c => !contains(dataAccountContainerNames, c))
var containerNames = union(mainJobContainerNames, [
  deploymentContainerName
  hostLocksContainerName
  deadLetterContainerName
])
var queueNames = [
  queueName
  '${queueName}-poison'
]
var tableNames = [
  jobsTableName
  minibatchesTableName
]

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for name in queueNames: {
    parent: queueService
    name: name
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for name in tableNames: {
    parent: tableService
    name: name
  }
]

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${namePrefix}-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${namePrefix}-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
  }
}

// ---------------------------------------------------------------------------------------------
// Function app
// ---------------------------------------------------------------------------------------------

// Flex Consumption rather than Elastic Premium: it scales to zero (no always-on instance to
// pay for between jobs), scales out to 1000 instances, and scales per function, so the queue
// scorer grows with the queue apart from the HTTP and Durable functions. It runs Durable
// Functions on the Azure Storage provider, takes identity-based host storage, and is where
// Linux Consumption apps are being moved. What it lacks (custom containers, GPUs) is what the
// Container Apps scorer below is for. Its blob trigger only supports the Event Grid source,
// which is the one batchfx uses.
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${namePrefix}-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

var batchfxSettings = {
  BATCHFX_QUEUE_NAME: queueName
  BATCHFX_JOBS_CONTAINER: jobsContainerName
  BATCHFX_JOBS_TABLE: jobsTableName
  BATCHFX_MINIBATCHES_TABLE: minibatchesTableName
  BATCHFX_POLL_INTERVAL_S: pollIntervalSeconds
  BATCHFX_LEASE_MARGIN_S: string(leaseMarginSeconds)
  BATCHFX_WORK_DIR: workDir
  // The blob-drop trigger's path is %BATCHFX_INBOX_CONTAINER%/{name}: the host needs it set.
  BATCHFX_INBOX_CONTAINER: inboxContainerName
  BATCHFX_OUTPUTS_CONTAINER: outputsContainerName
  // Jobs may name these containers (and the inbox, the outputs and batchfx's own container),
  // never the host's (function keys, deployment package) nor the Durable task hub's.
  BATCHFX_ALLOWED_CONTAINERS: join(dataContainerNames, ',')
}
// Every container but the app's own is in the data account (an account name: batchfx connects
// with the app's identity, AZURE_CLIENT_ID).
var dataAccountSettings = deployDataAccount ? {
  BATCHFX_DATA_ACCOUNT: dataStorageAccountName
} : {}

// No FUNCTIONS_WORKER_RUNTIME (nor FUNCTIONS_EXTENSION_VERSION): Flex Consumption takes the
// runtime from functionAppConfig.runtime and does not support those settings.
var functionAppHostSettings = {
  // Identity-based host storage (Functions host, Durable Functions, the blob and queue
  // triggers) with the app's user-assigned identity.
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: functionAppIdentity.properties.clientId
  // batchfx reads AzureWebJobsStorage__accountName and connects with azure-identity's
  // DefaultAzureCredential, which picks the user-assigned identity from AZURE_CLIENT_ID.
  AZURE_CLIENT_ID: functionAppIdentity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
}
var cpuScorerOff = {
  AzureWebJobs_score_mini_batch_queue_Disabled: 'true'
}
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (!empty(keyVaultName)) {
  name: empty(keyVaultName) ? 'none' : keyVaultName
}
// The vault URL from its name (https://<name>.vault.azure.net/ in the public cloud).
var keyVaultSettings = empty(keyVaultName) ? {} : {
  BATCHFX_KEY_VAULT_URL: 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/'
}
var functionAppSettings = union(batchfxSettings, dataAccountSettings, functionAppHostSettings, keyVaultSettings, scoreOnFunctionApp ? {} : cpuScorerOff)

// A user-assigned identity rather than a system-assigned one: its storage roles exist before
// the app starts and reads its deployment package, and they survive the app being recreated.
resource functionAppIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: functionAppIdentityName
  location: location
  tags: tags
}

module functionAppStorageRoles 'modules/storage-roles.bicep' = {
  name: 'storage-roles-${functionAppName}'
  params: {
    storageAccountName: storage.name
    principalId: functionAppIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${functionAppIdentity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: map(items(functionAppSettings), s => {
        name: s.key
        value: s.value
      })
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: functionAppIdentity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [
    containers
    queues
    tables
    functionAppStorageRoles
    dataAccount
  ]
}

// Key Vault Secrets User: read secrets (get_secret in scoring scripts), nothing else.
resource keyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultName)) {
  name: guid(resourceGroup().id, keyVaultName, functionAppName, '4633458b-17de-408a-b874-0445c86b69e6')
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
    principalId: functionAppIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The same for the GPU scorer's identity: its scoring scripts call get_secret too.
resource gpuKeyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultName) && deployGpuScorer) {
  name: guid(resourceGroup().id, keyVaultName, gpuScorerName, '4633458b-17de-408a-b874-0445c86b69e6')
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
    principalId: deployGpuScorer ? gpuScorer.outputs.principalId : ''
    principalType: 'ServicePrincipal'
  }
}

module userStorageRoles 'modules/storage-roles.bicep' = if (!empty(principalId)) {
  name: 'storage-roles-user'
  params: {
    storageAccountName: storage.name
    principalId: principalId
    principalType: principalType
  }
}

// The job data account (deployDataAccount, BATCHFX_DATA_ACCOUNT): the outputs and data
// containers, and Storage Blob Data Contributor on the whole account for the main app (it keeps
// its roles on its own account) and the principalId user (the batchfx CLI uploads inputs there
// and reads outputs). The GPU scorer's roles there are on those containers only (gpuScorer).
module dataAccount 'modules/data-account.bicep' = if (deployDataAccount) {
  name: 'data-account'
  params: {
    name: dataStorageAccountName
    location: location
    tags: tags
    allowSharedKeyAccess: allowSharedKeyAccess
    containerNames: dataAccountContainerNames
    blobContributors: concat([
      {
        principalId: functionAppIdentity.properties.principalId
        principalType: 'ServicePrincipal'
      }
    ], empty(principalId) ? [] : [
      {
        principalId: principalId
        principalType: principalType
      }
    ])
  }
}

// ---------------------------------------------------------------------------------------------
// Blob drop: Event Grid system topic on the storage account (one per account)
// ---------------------------------------------------------------------------------------------

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${storage.name}'
  location: location
  tags: tags
  // Its identity writes dead letters (events Event Grid gave up delivering) to one container.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

module deadLetterRoles 'modules/scoped-storage-roles.bicep' = {
  name: 'storage-roles-${systemTopic.name}'
  params: {
    storageAccountName: storage.name
    principalId: systemTopic.identity.principalId
    containerNames: [
      deadLetterContainerName
    ]
  }
  dependsOn: [
    containers
  ]
}

// Needs the blob-drop function deployed first (see the parameter's description).
module blobDropSubscription 'modules/blob-drop-subscription.bicep' = if (deployEventGridSubscription) {
  name: 'blob-drop-subscription'
  params: {
    systemTopicName: systemTopic.name
    functionAppName: functionApp.name
    functionName: blobDropFunctionName
    containerName: inboxContainerName
    deadLetterStorageAccountId: storage.id
    deadLetterContainerName: deadLetterContainerName
  }
  dependsOn: [
    containers
    deadLetterRoles
  ]
}

// ---------------------------------------------------------------------------------------------
// GPU scorer: Azure Functions on Azure Container Apps, serverless GPU workload profile
// ---------------------------------------------------------------------------------------------

module gpuScorer 'modules/gpu-scorer.bicep' = if (deployGpuScorer) {
  name: 'gpu-scorer'
  params: {
    location: gpuLocation
    tags: tags
    name: gpuScorerName
    environmentName: 'cae-${namePrefix}-${resourceToken}'
    identityName: 'id-${gpuScorerName}'
    workloadProfileType: gpuWorkloadProfileType
    image: gpuImage
    containerRegistryName: containerRegistryName
    minReplicas: gpuMinReplicas
    maxReplicas: gpuMaxReplicas
    storageAccountName: storage.name
    // On the app's account, only its own containers the scorer uses (and, without a data
    // account, the outputs and data containers); the rest on the data account's containers.
    containerNames: union(mainJobContainerNames, [
      hostLocksContainerName
    ])
    dataStorageAccountName: deployDataAccount ? dataStorageAccountName : ''
    dataContainerNames: dataAccountContainerNames
    queueNames: queueNames
    tableNames: tableNames
    queueName: queueName
    queueMessagesPerReplica: gpuQueueMessagesPerReplica
    // Never below two run_invocation_timeouts (one running, one staged) + BATCHFX_LEASE_MARGIN_S,
    // whatever was passed (parenthesised: pycep, which the infra tests use, has no precedence).
    terminationGracePeriodSeconds: max(gpuTerminationGracePeriodSeconds, (2 * gpuRunInvocationTimeoutSeconds) + leaseMarginSeconds)
    logAnalyticsWorkspaceName: logAnalytics.name
    appInsightsConnectionString: appInsights.properties.ConnectionString
    settings: union(batchfxSettings, dataAccountSettings, keyVaultSettings)
  }
  dependsOn: [
    queues
    tables
    containers
    dataAccount
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.name
output functionAppIdentityClientId string = functionAppIdentity.properties.clientId
output functionAppIdentityPrincipalId string = functionAppIdentity.properties.principalId
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
output storageAccountName string = storage.name
output dataStorageAccountName string = deployDataAccount ? dataStorageAccountName : ''
output eventGridSystemTopicName string = systemTopic.name
output applicationInsightsName string = appInsights.name
output gpuScorerName string = deployGpuScorer ? gpuScorer.outputs.name : ''
output gpuScorerFqdn string = deployGpuScorer ? gpuScorer.outputs.fqdn : ''
