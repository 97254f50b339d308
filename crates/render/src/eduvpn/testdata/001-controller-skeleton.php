<?php return array (
  'useVpnDaemon' => true,
  'vpnProfiles' =>
  array (
    'node-a' =>
    array (
        // ...
    ),
    'node-b' =>
    array (
        // ...
    ),
  ),
);

