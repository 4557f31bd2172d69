"""Status codes: the common ones of MS-ASCMD 2.2.2 and the HTTP ones of MS-ASHTTP 2.2.2.1.1.

Per-command codes (Sync 3, Ping 5, ...) live beside their command in ``eas.commands``.
"""

from __future__ import annotations

from enum import IntEnum


class Common(IntEnum):
    """MS-ASCMD 2.2.2: the status codes any command may carry from 14.0 on."""

    InvalidContent = 101
    InvalidWBXML = 102
    InvalidXML = 103
    InvalidDateTime = 104
    InvalidCombinationOfIDs = 105
    InvalidIDs = 106
    InvalidMIME = 107
    DeviceIdMissingOrInvalid = 108
    DeviceTypeMissingOrInvalid = 109
    ServerError = 110
    ServerErrorRetryLater = 111
    ActiveDirectoryAccessDenied = 112
    MailboxQuotaExceeded = 113
    MailboxServerOffline = 114
    SendQuotaExceeded = 115
    MessageRecipientUnresolved = 116
    MessageReplyNotAllowed = 117
    MessagePreviouslySent = 118
    MessageHasNoRecipient = 119
    MailSubmissionFailed = 120
    MessageReplyFailed = 121
    AttachmentIsTooLarge = 122
    UserHasNoMailbox = 123
    UserCannotBeAnonymous = 124
    UserPrincipalCouldNotBeFound = 125
    UserDisabledForSync = 126
    UserOnNewMailboxCannotSync = 127
    UserOnLegacyMailboxCannotSync = 128
    DeviceIsBlockedForThisUser = 129
    AccessDenied = 130
    AccountDisabled = 131
    SyncStateNotFound = 132
    SyncStateLocked = 133
    SyncStateCorrupt = 134
    SyncStateAlreadyExists = 135
    SyncStateVersionInvalid = 136
    CommandNotSupported = 137
    VersionNotSupported = 138
    DeviceNotFullyProvisionable = 139
    RemoteWipeRequested = 140
    LegacyDeviceOnStrictPolicy = 141
    DeviceNotProvisioned = 142
    PolicyRefresh = 143
    InvalidPolicyKey = 144
    ExternallyManagedDevicesNotAllowed = 145
    NoRecurrenceInCalendar = 146
    UnexpectedItemClass = 147
    RemoteServerHasNoSSL = 148
    InvalidStoredRequest = 149
    ItemNotFound = 150
    TooManyFolders = 151
    NoFoldersFound = 152
    ItemsLostAfterMove = 153
    FailureInMoveOperation = 154
    MoveCommandDisallowedForNonPersistentMoveAction = 155
    MoveCommandInvalidDestinationFolder = 156
    AvailabilityTooManyRecipients = 160
    AvailabilityDLLimitReached = 161
    AvailabilityTransientFailure = 162
    AvailabilityFailure = 163
    BodyPartPreferenceTypeNotSupported = 164
    DeviceInformationRequired = 165
    InvalidAccountId = 166
    AccountSendDisabled = 167
    IRM_FeatureDisabled = 168
    IRM_TransientError = 169
    IRM_PermanentError = 170
    IRM_InvalidTemplateID = 171
    IRM_OperationNotPermitted = 172
    NoPicture = 173
    PictureTooLarge = 174
    PictureLimitReached = 175
    BodyPart_ConversationTooLarge = 176
    MaximumDevicesReached = 177
    InvalidMimeBodyCombination = 178
    InvalidSmartForwardParameters = 179
    InvalidRecipients = 183
    OneOrMoreExceptionsFailed = 184


# MS-ASCMD 2.2.2: what 2.5-12.1 clients get instead of a common status (HTTP code).
LEGACY_HTTP: dict[int, int] = {
    Common.InvalidContent: 400,
    Common.InvalidWBXML: 400,
    Common.InvalidXML: 400,
    Common.InvalidIDs: 400,
    Common.DeviceIdMissingOrInvalid: 400,
    Common.DeviceTypeMissingOrInvalid: 400,
    Common.ServerError: 500,
    Common.ServerErrorRetryLater: 503,
    Common.ActiveDirectoryAccessDenied: 403,
    Common.MailboxQuotaExceeded: 507,
    Common.UserPrincipalCouldNotBeFound: 403,
    Common.UserDisabledForSync: 403,
    Common.DeviceIsBlockedForThisUser: 403,
    Common.AccessDenied: 403,
    Common.AccountDisabled: 403,
    Common.SyncStateNotFound: 403,
    Common.CommandNotSupported: 501,
    Common.VersionNotSupported: 400,
    Common.RemoteWipeRequested: 449,
    Common.LegacyDeviceOnStrictPolicy: 449,
    Common.DeviceNotProvisioned: 449,
    Common.PolicyRefresh: 449,
    Common.InvalidPolicyKey: 449,
    Common.UnexpectedItemClass: 400,
    Common.MaximumDevicesReached: 403,
}

# HTTP status codes of MS-ASHTTP 2.2.2.1.1 (IANA registry names where one exists).
OK = 200
BAD_REQUEST = 400
UNAUTHORIZED = 401
FORBIDDEN = 403
NOT_FOUND = 404
METHOD_NOT_ALLOWED = 405
PAYLOAD_TOO_LARGE = 413
UNSUPPORTED_MEDIA_TYPE = 415
RETRY_AFTER_PROVISIONING = 449
REDIRECT_SERVER = 451
ACCOUNT_BLOCKED = 456
PASSWORD_EXPIRED = 457
INTERNAL_SERVER_ERROR = 500
NOT_IMPLEMENTED = 501
SERVICE_UNAVAILABLE = 503
MAILBOX_FULL = 507

REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    449: "Retry With",
    451: "Redirect",
    456: "Account Blocked",
    457: "Password Expired",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}
