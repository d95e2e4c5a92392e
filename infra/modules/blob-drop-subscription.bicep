// Event Grid subscription: BlobCreated events in the inbox container go to the function app's
// blob-extension webhook, which runs the Event Grid-source blob trigger named functionName.
//
// Deploy this only after the function exists in the deployed app: the `blobs_extension`
// system key read below is created by the host once it has loaded an Event Grid blob
// trigger, and Event Grid validates the webhook when the subscription is created.
// main.bicep calls this module only when deployEventGridSubscription is true, so the key is
// not looked up before then.
//
// Events Event Grid gives up on (30 tries or 24 hours, for example while the app is down or
// its key has changed) are written to a dead-letter container with the system topic's own
// identity, instead of being dropped.

@description('Name of the Event Grid system topic on the storage account.')
param systemTopicName string

@description('Name of the function app that hosts the blob trigger.')
param functionAppName string

@description('Name of the Event Grid-source blob trigger function.')
param functionName string

@description('Blob container whose new blobs are delivered.')
param containerName string

@description('Resource id of the storage account that holds the dead-letter container.')
param deadLetterStorageAccountId string

@description('Blob container for events that could not be delivered; the system topic\'s identity must be able to write it.')
param deadLetterContainerName string

@description('Name of the event subscription.')
param subscriptionName string = 'blob-drop-${containerName}'

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

var blobsExtensionKey = listKeys('${functionApp.id}/host/default', '2024-04-01').systemKeys.blobs_extension

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: subscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${containerName}/'
      // Only markers and job files start a job (batchfx.services.blob_drops.EVENT_SUBJECT_SUFFIXES);
      // without this the host would download every data file only to ignore it.
      advancedFilters: [
        {
          operatorType: 'StringEndsWith'
          key: 'subject'
          values: [ '/_SUCCESS', '.job.yml', '.job.yaml', '.job.json' ]
        }
      ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output name string = blobCreated.name
