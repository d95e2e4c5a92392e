// The GPU scorer: the same batchfx function app, as a container, hosted by Azure Functions on
// Azure Container Apps (a container app with kind 'functionapp') on a serverless GPU workload
// profile. It pulls the same mini-batch queue from the same storage account as the main app.
//
// Only the queue scorer runs here: the image's function_app.py (infra/gpu/function_app.py)
// registers score_mini_batch_queue and the poison recorder alone; as a second guard every
// other function of the main app is turned off with AzureWebJobs_<name>_Disabled (the underscore form the host accepts where variable names
// can't hold dots), so HTTP, the Durable orchestration and the blob drop stay on the main app.
// The task hub is also renamed here, so nothing Durable on this app can take the main app's
// orchestration work even if a new durable function is added and not listed as disabled.

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

@description('Storage account batchfx and the Functions host use.')
param storageAccountName string

@description('Log Analytics workspace (this resource group) for the environment\'s logs.')
param logAnalyticsWorkspaceName string

@secure()
param appInsightsConnectionString string

@description('The BATCHFX_* settings, the same values the main app gets.')
param settings object

@description('Functions that must not run on the GPU app.')
param disabledFunctions array

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

module storageRoles 'storage-roles.bicep' = {
  name: 'storage-roles-${name}'
  params: {
    storageAccountName: storageAccountName
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
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
}
var disabledSettings = toObject(disabledFunctions, f => 'AzureWebJobs_${f}_Disabled', f => 'true')
var containerSettings = union(settings, hostSettings, disabledSettings)
var settingsEnv = map(items(containerSettings), s => {
  name: s.key
  value: s.value
})
var registryServer = empty(containerRegistryName) ? '' : acrPull.outputs.loginServer

resource app 'Microsoft.App/containerApps@2024-10-02-preview' = {
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
      // Functions on Container Apps needs ingress on for event-driven scaling; internal is
      // enough, since every HTTP function is disabled here.
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
      // The Functions integration derives the queue scale rule from the trigger; these bound it.
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
      }
    }
  }
  dependsOn: [
    storageRoles
    acrPull
  ]
}

output name string = app.name
output fqdn string = app.properties.configuration.ingress.fqdn
output principalId string = identity.properties.principalId
