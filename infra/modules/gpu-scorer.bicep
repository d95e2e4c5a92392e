// The GPU scorer: the same batchfx function app, as a container, hosted by Azure Functions on
// Azure Container Apps (a container app with kind 'functionapp') on a serverless GPU workload
// profile. It pulls the same mini-batch queue from the same storage account as the main app.
//
// Only the queue scorer runs here: the image's function_app.py (infra/gpu/function_app.py)
// registers score_mini_batch_queue and the poison recorder alone (tests/unit/test_packaging.py),
// so HTTP, timers, the Durable orchestration and the blob drop stay on the main app. The task
// hub is also renamed here, so nothing Durable on this app could take the main app's
// orchestration work even if a durable function were added to the image.
//
// Scoring scripts run here, so this app's identity holds as little as the scorer needs
// (modules/scoped-storage-roles.bicep): the named containers, the two queues and the two
// tables, not the account; with a job data account, the named containers of that account. It scales on an explicit KEDA azure-queue rule that reads the
// queue with the same identity, and a replica being scaled in gets terminationGracePeriodSeconds
// to finish or release its mini-batch.

@description('Region of the Container Apps environment (serverless GPUs are offered in some regions only).')
param location string

param tags object = {}

@description('Name of the container app (2-32 lowercase letters, digits, hyphens).')
@maxLength(32)
param name string

@description('Name of the Container Apps environment.')
param environmentName string

@description('Name of the user-assigned identity the scorer runs as.')
param identityName string

@description('Serverless GPU workload profile type.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param workloadProfileType string

@description('Container image built from infra/gpu/Dockerfile, for example myacr.azurecr.io/batchfx-gpu:1.')
@minLength(1)
param image string

@description('Existing container registry in this resource group to pull the image from with the identity; empty for an image that needs no credentials.')
param containerRegistryName string = ''

@minValue(0)
param minReplicas int = 0

@minValue(1)
param maxReplicas int = 4

@description('The app\'s storage account (AzureWebJobsStorage), which batchfx and the Functions host use.')
param storageAccountName string

@description('Blob containers of storageAccountName the scorer reads and writes: batchfx\'s jobs container, the inbox, the host\'s azure-webjobs-hosts (its locks) and, without a data account, the outputs container and the containers jobs may name. They must exist.')
param containerNames array

@description('Job data account (BATCHFX_DATA_ACCOUNT) in this resource group; empty: none, job data is in storageAccountName.')
param dataStorageAccountName string = ''

@description('Blob containers of dataStorageAccountName the scorer reads and writes: the outputs container and the containers jobs may name. They must exist.')
param dataContainerNames array = []

@description('The mini-batch queue and its poison queue (they must exist).')
param queueNames array

@description('The jobs and mini-batches tables (they must exist).')
param tableNames array

@description('The queue the KEDA rule watches: BATCHFX_QUEUE_NAME.')
param queueName string

@description('Messages waiting per replica before KEDA adds one (a replica takes host.json\'s batchSize + newBatchThreshold messages at once).')
@minValue(1)
param queueMessagesPerReplica int = 6

@description('Seconds a replica has between SIGTERM (scale-in, new revision) and SIGKILL: at least the longest run_invocation_timeout plus BATCHFX_LEASE_MARGIN_S, so that a running mini-batch ends or is released instead of spending a try.')
@minValue(30)
param terminationGracePeriodSeconds int

@description('Log Analytics workspace (this resource group) for the environment\'s logs.')
param logAnalyticsWorkspaceName string

@secure()
param appInsightsConnectionString string

@description('The BATCHFX_* settings, the same values the main app gets.')
param settings object

@description('Durable task hub name for this app, different from the main app\'s.')
param durableHubName string = 'batchfxgpu'

// vCPUs and memory a replica gets on each serverless GPU profile (one GPU per replica).
var replicaSizes = {
  'Consumption-GPU-NC8as-T4': {
    cpu: 8
    memory: '56Gi'
  }
  'Consumption-GPU-NC24-A100': {
    cpu: 24
    memory: '220Gi'
  }
}
var gpuProfileName = 'gpu'

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsWorkspaceName
}

// A user-assigned identity, not a system-assigned one, so that its storage roles and AcrPull
// exist before the first replica starts and pulls the image.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

module storageRoles 'scoped-storage-roles.bicep' = {
  name: 'storage-roles-${name}'
  params: {
    storageAccountName: storageAccountName
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    containerNames: containerNames
    queueNames: queueNames
    tableNames: tableNames
  }
}

// On the data account, the job data containers only: not the account.
module dataStorageRoles 'scoped-storage-roles.bicep' = if (!empty(dataStorageAccountName)) {
  name: 'data-storage-roles-${name}'
  params: {
    storageAccountName: dataStorageAccountName
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    containerNames: dataContainerNames
  }
}

module acrPull 'acr-pull.bicep' = if (!empty(containerRegistryName)) {
  name: 'acr-pull-${name}'
  params: {
    containerRegistryName: containerRegistryName
    principalId: identity.properties.principalId
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-10-02-preview' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logAnalytics.properties.customerId
        sharedKey: logAnalytics.listKeys().primarySharedKey
      }
    }
    // Serverless GPUs need a workload-profiles environment (not Consumption-only).
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      {
        name: gpuProfileName
        workloadProfileType: workloadProfileType
      }
    ]
  }
}

var hostSettings = {
  FUNCTIONS_WORKER_RUNTIME: 'python'
  // Identity-based host storage with the user-assigned identity.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  // batchfx's own storage clients use azure-identity's DefaultAzureCredential, which picks
  // the user-assigned identity from AZURE_CLIENT_ID.
  AZURE_CLIENT_ID: identity.properties.clientId
  // A fixed host id: this app shares the storage account with the main app.
  AzureFunctionsWebHost__hostid: name
  AzureFunctionsJobHost__extensions__durableTask__hubName: durableHubName
  // Function keys in the Container Apps secret store, not in the storage account's
  // azure-webjobs-secrets container (which holds the main app's keys and is not granted here).
  AzureWebJobsSecretStorageType: 'containerapp'
  // On SIGTERM (scale-in, a new revision) the host drains: it stops taking messages and lets
  // the invocations under way end within terminationGracePeriodSeconds, instead of the few
  // seconds it waits otherwise, so a running mini-batch finishes instead of spending a try.
  FUNCTIONS_ENABLE_DRAIN_ON_APP_STOPPING: 'true'
}
var containerSettings = union(settings, hostSettings)
var settingsEnv = map(items(containerSettings), s => {
  name: s.key
  value: s.value
})
var registryServer = empty(containerRegistryName) ? '' : acrPull.outputs.loginServer

// 2026-03-02-preview: the first API version with scale.allowScalingRuleOverride, without which
// Container Apps blocks user-supplied scale rules on a Functions app (kind 'functionapp').
resource app 'Microsoft.App/containerApps@2026-03-02-preview' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    managedEnvironmentId: environment.id
    workloadProfileName: gpuProfileName
    configuration: {
      activeRevisionsMode: 'Single'
      // Internal ingress only: the image has no HTTP function; the Functions integration
      // expects ingress on.
      ingress: {
        external: false
        targetPort: 80
        allowInsecure: false
        traffic: [
          {
            latestRevision: true
            weight: 100
          }
        ]
      }
      registries: empty(containerRegistryName) ? [] : [
        {
          server: registryServer
          identity: identity.id
        }
      ]
      secrets: [
        {
          name: 'appinsights-connection-string'
          value: appInsightsConnectionString
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'scorer'
          image: image
          env: concat(settingsEnv, [
            {
              name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
              secretRef: 'appinsights-connection-string'
            }
          ])
          resources: {
            cpu: replicaSizes[workloadProfileType].cpu
            memory: replicaSizes[workloadProfileType].memory
          }
        }
      ]
      terminationGracePeriodSeconds: terminationGracePeriodSeconds
      // An explicit KEDA azure-queue rule authenticated with the user-assigned identity,
      // instead of the rule Container Apps would derive from the trigger.
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        allowScalingRuleOverride: true
        rules: [
          {
            name: 'minibatch-queue'
            custom: {
              type: 'azure-queue'
              metadata: {
                accountName: storageAccountName
                queueName: queueName
                queueLength: string(queueMessagesPerReplica)
              }
              identity: identity.id
            }
          }
        ]
      }
    }
  }
  dependsOn: [
    storageRoles
    dataStorageRoles
    acrPull
  ]
}

output name string = app.name
output fqdn string = app.properties.configuration.ingress.fqdn
output principalId string = identity.properties.principalId
