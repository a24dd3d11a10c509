// The signed-in user, refetchable by its global id.
import { graphql } from 'relay-runtime';

export const Viewer = graphql`
  fragment Viewer_user on User @refetchable(queryName: "ViewerRefetchQuery") {
    id
    email
    displayName
    permissions
  }
`;
